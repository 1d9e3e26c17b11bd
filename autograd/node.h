// autograd/node.h — the tape: a Node per recorded op, with a backward lambda and input edges.
//
// A Node's edges point at its inputs' GradSlots together with each input's geometry, so an
// input that is a view (a window of a parameter) receives its gradient directly in that window
// of the parameter's gradient: BackwardContext::window() hands out the window for in-place
// accumulation (a GEMM with beta = 1), accumulate() adds a computed gradient into it.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace sn::autograd {

// One input of a node: where its gradient goes.
struct Edge {
  std::shared_ptr<GradSlot> slot;  // null: the input needs no gradient
  Shape sizes, strides;            // the input's geometry; a window of slot->grad
  int64_t offset = 0;
  bool defined() const { return slot != nullptr; }
};

Edge edge_of(const Tensor& t);

// A tensor kept for backward; using it after an in-place change of its memory is an error.
class Saved {
 public:
  Saved() = default;
  explicit Saved(const Tensor& t);
  // The saved tensor; throws if it was modified in place since it was saved.
  const Tensor& get(const char* op) const;

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
};

class BackwardContext;
using BackwardFn = std::function<void(BackwardContext&)>;

class Node {
 public:
  Node(const char* name, BackwardFn fn, std::vector<Edge> edges);
  const char* name() const { return name_; }
  uint64_t sequence() const { return sequence_; }  // creation order; later ops run first
  const std::vector<Edge>& edges() const { return edges_; }
  void run(BackwardContext& ctx);
  void release() { fn_ = nullptr; }  // frees saved tensors (after backward without retain_graph)
  bool released() const { return !fn_; }
  std::weak_ptr<GradSlot> output;

 private:
  const char* name_;
  uint64_t sequence_;
  BackwardFn fn_;
  std::vector<Edge> edges_;
};

class BackwardContext {
 public:
  BackwardContext(const Node& node, Tensor grad) : node_(node), grad_(std::move(grad)) {}
  // Gradient with respect to the node's output.
  const Tensor& grad() const { return grad_; }
  // Whether input i wants a gradient.
  bool needs(size_t i) const { return i < node_.edges().size() && node_.edges()[i].defined(); }
  // Adds g into input i's gradient; g may have extra leading or size-1 dims (broadcasting),
  // which are summed away.
  void accumulate(size_t i, Tensor g);
  // Input i's gradient window (zero-filled on first use) for kernels that accumulate in place;
  // undefined when the input is a broadcast (stride-0) view: use accumulate() then. With
  // `fresh`: when this is the first gradient of the whole input, the window is left
  // uninitialised and *fresh set; the caller must then write every element (e.g. beta = 0).
  Tensor window(size_t i, bool* fresh = nullptr);

 private:
  const Node& node_;
  Tensor grad_;
};

// Records `output` as produced by `name` from `inputs` when grad mode is on and any input
// requires grad; returns output (now requiring grad) either way.
Tensor record(const char* name, Tensor output, const std::vector<const Tensor*>& inputs, BackwardFn fn);
bool any_requires_grad(const std::vector<const Tensor*>& inputs);

// Adds g into the gradient window that `edge` describes (shared by the engine and contexts).
void accumulate_into(const Edge& edge, Tensor g);
Tensor window_of(const Edge& edge, bool* fresh = nullptr);
Tensor window_in(const Tensor& buffer, const Edge& edge);

}  // namespace sn::autograd

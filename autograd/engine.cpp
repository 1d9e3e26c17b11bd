// autograd/engine.cpp — the backward engine and the autograd methods of Tensor.
#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/backend.h"

namespace sn {
namespace autograd {
namespace {
std::atomic<uint64_t> g_sequence{0};

// The gradient buffer of a slot: zeros laid out like the owning tensor.
// A zeroed f32 buffer laid out like the slot's tensor (its strides, offset 0): gradients are read
// through the slot's geometry (window_in), so every buffer kept for it must share that layout.
Tensor slot_buffer(const GradSlot& slot, Device device) {
  int64_t span = 1;
  for (size_t i = 0; i < slot.sizes.size(); ++i)
    if (slot.sizes[i] > 0) span += (slot.sizes[i] - 1) * slot.strides[i];
  auto storage = std::make_shared<Storage>(size_t(span) * 4, device);
  backend_for(device).fill(Tensor::from_storage(storage, {span}, {1}, 0, DType::f32), 0.f);
  return Tensor::from_storage(storage, slot.sizes, slot.strides, 0, DType::f32);
}

Tensor& ensure_buffer(GradSlot& slot, Device device) {
  if (!slot.grad.defined()) slot.grad = slot_buffer(slot, device);
  return slot.grad;
}

bool covers_slot(const Edge& e) {
  return e.sizes == e.slot->sizes && e.strides == e.slot->strides && e.offset == e.slot->offset;
}

bool contiguous_geometry(const Shape& sizes, const Shape& strides) {
  int64_t expected = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] != 1 && strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

// Whether the edge's view is all of the slot's tensor, both contiguous (the same tensor, or a
// reshape of it): the first gradient can then become, or be written straight into, the buffer.
bool same_contiguous_span(const Edge& e) {
  const GradSlot& s = *e.slot;
  return e.offset == s.offset && numel_of(e.sizes) == numel_of(s.sizes) && contiguous_geometry(e.sizes, e.strides) &&
         contiguous_geometry(s.sizes, s.strides);
}

}  // namespace

Edge edge_of(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.grad_slot()) return e;
  e.slot = t.grad_slot();
  e.sizes = t.sizes();
  e.strides = t.strides();
  e.offset = t.offset();
  return e;
}

Saved::Saved(const Tensor& t) : tensor_(t.defined() ? t.detach() : t), version_(t.defined() ? t.version() : 0) {}

const Tensor& Saved::get(const char* op) const {
  if (tensor_.defined())
    SN_CHECK(tensor_.version() == version_, op,
             "a tensor saved for backward (", shape_str(tensor_.sizes()),
             ") was modified in place after it was saved (version ", version_, " -> ",
             tensor_.version(), ")");
  return tensor_;
}

Node::Node(const char* name, BackwardFn fn, std::vector<Edge> edges)
    : name_(name), sequence_(g_sequence++), fn_(std::move(fn)), edges_(std::move(edges)) {}

void Node::run(BackwardContext& ctx) {
  SN_CHECK(fn_ != nullptr, name_,
           "backward through a graph whose saved tensors were already freed; pass "
           "retain_graph=true to the first backward()");
  fn_(ctx);
}

// The window of `buf` (laid out like the slot's tensor) that the edge's geometry covers.
Tensor window_in(const Tensor& buf, const Edge& e) {
  NoGradGuard guard;
  return buf.as_strided(e.sizes, e.strides, buf.offset() + e.offset - e.slot->offset);
}

Tensor window_of(const Edge& e, bool* fresh) {
  for (int64_t s : e.strides)
    if (s == 0) return Tensor();
  GradSlot& slot = *e.slot;
  if (fresh) *fresh = false;
  if (fresh && !slot.grad.defined() && same_contiguous_span(e)) {  // no zero-fill: the caller overwrites it
    slot.grad = empty(slot.sizes, DType::f32, slot.device).as_strided(slot.sizes, slot.strides, 0);
    *fresh = true;
  }
  return window_in(ensure_buffer(slot, slot.device), e);
}

void accumulate_into(const Edge& e, Tensor g) {
  NoGradGuard guard;
  SN_CHECK(g.dtype() == DType::f32, "backward", "gradients are f32, got ", dtype_name(g.dtype()));
  // Broadcasting in the forward pass: sum the gradient back to the input's shape.
  if (g.sizes() != e.sizes) g = sum_to(g, e.sizes);
  // A stride-0 (expanded) input: its elements alias, so sum over the expanded dims too.
  Shape sizes = e.sizes;
  bool expanded = false;
  for (size_t i = 0; i < sizes.size(); ++i)
    if (e.strides[i] == 0 && sizes[i] != 1) {
      sizes[i] = 1;
      expanded = true;
    }
  if (expanded) g = sum_to(g, sizes);
  GradSlot& slot = *e.slot;
  if (!slot.grad.defined() && !expanded && g.is_contiguous() && g.is_uniquely_owned()) {
    // The first gradient becomes the buffer (no zero-fill, no add), also through a reshape.
    if (covers_slot(e) && g.strides() == slot.strides) {
      slot.grad = std::move(g);
      return;
    }
    if (same_contiguous_span(e)) {
      slot.grad = g.view(slot.sizes);
      return;
    }
  }
  Tensor& buf = ensure_buffer(slot, slot.device);
  Tensor win = buf.as_strided(sizes, e.strides, buf.offset() + e.offset - slot.offset);
  backend_for(win.device()).axpy(win, 1.f, g);
}

void BackwardContext::accumulate(size_t i, Tensor g) {
  if (needs(i)) accumulate_into(node_.edges()[i], std::move(g));
}

Tensor BackwardContext::window(size_t i, bool* fresh) {
  if (fresh) *fresh = false;
  if (!needs(i)) return Tensor();
  return window_of(node_.edges()[i], fresh);
}

bool any_requires_grad(const std::vector<const Tensor*>& inputs) {
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor output, const std::vector<const Tensor*>& inputs, BackwardFn fn) {
  if (!GradMode::is_enabled() || !any_requires_grad(inputs)) return output;
  std::vector<Edge> edges;
  edges.reserve(inputs.size());
  for (const Tensor* t : inputs) edges.push_back(edge_of(*t));
  auto node = std::make_shared<Node>(name, std::move(fn), std::move(edges));
  auto slot = std::make_shared<GradSlot>();
  slot->producer = node;
  slot->sizes = output.sizes();
  slot->strides = output.strides();
  slot->offset = output.offset();
  slot->device = output.device();
  node->output = slot;
  output.set_grad_slot(std::move(slot));
  return output;
}

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  SN_CHECK(root.defined() && root.requires_grad(), "backward",
           "the tensor does not require grad (no input of its graph requires grad)");
  Tensor seed = gradient;
  if (!seed.defined()) {
    SN_CHECK(root.numel() == 1, "backward", "a gradient must be given for a non-scalar output ",
             shape_str(root.sizes()));
    seed = ones(root.sizes(), DType::f32, root.device());
  }
  SN_CHECK(seed.sizes() == root.sizes(), "backward", "gradient ", shape_str(seed.sizes()),
           " does not match output ", shape_str(root.sizes()));
  NoGradGuard no_grad;
  Edge root_edge = edge_of(root);
  Node* start = root_edge.slot->producer.get();
  if (!start) {  // a leaf: the seed is its gradient
    accumulate_into(root_edge, seed.is_uniquely_owned() ? seed : seed.clone());
    return;
  }

  // Count, for every node, how many edges of the graph lead to it; collect the non-leaf slots
  // whose in-flight gradients this pass owns.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{start};
  std::unordered_set<Node*> seen{start};
  std::vector<std::shared_ptr<GradSlot>> in_flight;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (auto out = n->output.lock()) in_flight.push_back(std::move(out));
    for (const Edge& e : n->edges()) {
      if (!e.defined() || !e.slot->producer) continue;
      Node* p = e.slot->producer.get();
      pending[p]++;
      if (seen.insert(p).second) stack.push_back(p);
    }
  }
  // In-flight gradients never outlive the pass, even when a backward formula throws.
  struct Clear {
    std::vector<std::shared_ptr<GradSlot>>& slots;
    ~Clear() {
      for (auto& s : slots) s->grad = Tensor();
    }
  } clear{in_flight};
  for (auto& s : in_flight) s->grad = Tensor();
  accumulate_into(root_edge, seed.is_uniquely_owned() ? seed : seed.clone());
  // Run nodes once all their consumers are done, newest first (frees memory early).
  auto later_first = [](Node* a, Node* b) { return a->sequence() < b->sequence(); };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  ready.push(start);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    std::shared_ptr<GradSlot> out = n->output.lock();
    if (out && out->grad.defined()) {
      BackwardContext ctx(*n, out->grad);
      n->run(ctx);
    }
    if (out && out->retain && out->grad.defined()) {  // keep a copy apart from the in-flight sum
      if (!out->retained.defined()) out->retained = slot_buffer(*out, out->grad.device());
      backend_for(out->grad.device()).axpy(out->retained, 1.f, out->grad);
    }
    if (out) out->grad = Tensor();
    if (!retain_graph) n->release();
    for (const Edge& e : n->edges()) {
      if (!e.defined() || !e.slot->producer) continue;
      Node* p = e.slot->producer.get();
      if (--pending[p] == 0) ready.push(p);
    }
  }
}

}  // namespace autograd

// ---- Tensor's autograd methods --------------------------------------------------------------

bool Tensor::requires_grad() const { return defined() && grad_slot() != nullptr; }

Tensor& Tensor::set_requires_grad(bool enabled) {
  SN_CHECK(is_leaf(), "set_requires_grad", "only leaves can change requires_grad (this tensor ",
           "was computed by ", grad_slot()->producer->name(), ")");
  SN_CHECK(dtype() == DType::f32, "set_requires_grad", "only f32 tensors can require grad, got ",
           dtype_name(dtype()));
  if (!enabled) {
    set_grad_slot(nullptr);
  } else if (!grad_slot()) {
    SN_CHECK(is_non_overlapping(), "set_requires_grad", "a tensor with overlapping memory (strides ",
             shape_str(strides()), ") cannot require grad");
    auto slot = std::make_shared<GradSlot>();
    slot->sizes = sizes();
    slot->strides = strides();
    slot->offset = offset();
    slot->device = device();
    set_grad_slot(std::move(slot));
  }
  return *this;
}

bool Tensor::is_leaf() const { return !grad_slot() || grad_slot()->producer == nullptr; }

Tensor Tensor::grad() const {
  if (!requires_grad()) return Tensor();
  const GradSlot& slot = *grad_slot();
  const Tensor& buf = slot.leaf() ? slot.grad : slot.retained;
  if (!buf.defined()) return Tensor();
  return autograd::window_in(buf, autograd::edge_of(*this));
}

void Tensor::zero_grad() {
  Tensor g = grad();
  if (g.defined()) backend_for(g.device()).fill(g, 0.f);
}

void Tensor::retain_grad() const {
  SN_CHECK(requires_grad(), "retain_grad", "the tensor does not require grad");
  grad_slot()->retain = true;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::run_backward(*this, gradient, retain_graph);
}

}  // namespace sn

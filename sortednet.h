// sortednet.h — everything a research binary needs, in one include: tensors and views, autograd
// and its ops, modules and nested layers, the sorted sub-model space, models, and the trainer
// (sampler, optimizers, data, checkpoints, evaluation). Link sortednet::sortednet.
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "models/model.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/submodel.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/safetensors.h"
#include "train/sampler.h"
#include "train/trainer.h"

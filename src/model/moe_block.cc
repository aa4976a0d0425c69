// DeepseekModel's feed-forward sub-layer: a dense SwiGLU MLP (DeepSeek's first_k_dense_replace
// layers) or the MoE block: router (moe_route), routed experts grouped by expert
// (moe_grouped_matmul over [E, N, K] stacks), weighted combine (moe_combine), plus shared
// experts.
// Also loads the MoE weights: HF checkpoints keep one tensor per expert, stacked here at load.
// Invariant: experts never run per token; each grouped matmul touches only active experts.
#include <cstring>
#include <string>
#include <utility>

#include "tessera/model/deepseek.h"

namespace tessera::model {
namespace {

// Stacks per-expert tensors [N, K] (all the same dtype and shape) into one owned [E, N, K].
// NOTE: an owned copy: fine for tiny / f32 models; a real checkpoint pays its expert bytes
// twice in host memory until the mapping is dropped (see docs/models.md).
Result<OwnedTensor> stack_experts(const WeightSource& w, std::string_view model_type,
                                  MoeWeight role, int layer, int64_t experts, int64_t n, int64_t k,
                                  bool scales = false) {
  OwnedTensor out;
  int64_t expert_bytes = 0;
  if (scales) {  // the FP8 block scales beside each expert weight
    n = (n + 127) / 128;
    k = (k + 127) / 128;
  }
  for (int64_t e = 0; e < experts; ++e) {
    std::string name = moe_weight_name(model_type, role, layer, static_cast<int>(e));
    if (scales) name = scale_inv_name(name);
    std::optional<Tensor> t = w.find(name);
    if (!t) return make_error(StatusCode::kNotFound, "{}: missing tensor '{}'", w.path(), name);
    if (t->ndim() != 2 || t->dim(0) != n || t->dim(1) != k || !t->is_contiguous()) {
      return data_loss("{}: shape {} does not match the config (expected [{}, {}])", name,
                       t->describe(), n, k);
    }
    if (e == 0) {
      out = OwnedTensor(t->dtype(), {experts, n, k});
      expert_bytes = out.view().stride_bytes(0);
    } else if (t->dtype() != out.view().dtype()) {
      return data_loss("{}: dtype {} differs from expert 0", name, dtype_name(t->dtype()));
    }
    std::memcpy(static_cast<char*>(out.view().data()) + e * expert_bytes, t->data(),
                static_cast<size_t>(expert_bytes));
  }
  return out;
}

}  // namespace

Status DeepseekModel::load_moe(int i, Moe& m) {
  const WeightSource& w = *weights_;
  const std::string& type = config_.model_type;
  TESSERA_ASSIGN_OR_RETURN(
      Projection router,
      projection(moe_weight_name(type, MoeWeight::kRouter, i), experts_, hidden_));
  m.router = router.weight;
  if (config_.model_type == "deepseek_v3") {
    TESSERA_ASSIGN_OR_RETURN(
        m.bias, small_f32(moe_weight_name(type, MoeWeight::kRouterBias, i), experts_, true));
  }
  // Stacked at load on the host, then made backend-resident (the host stack is dropped on a
  // device backend).
  struct Stack {
    Tensor* out;
    MoeWeight role;
    int64_t n, k;
  };
  const Stack stacks[] = {{&m.w_gate, MoeWeight::kExpertGate, moe_inter_, hidden_},
                          {&m.w_up, MoeWeight::kExpertUp, moe_inter_, hidden_},
                          {&m.w_down, MoeWeight::kExpertDown, hidden_, moe_inter_}};
  for (const Stack& st : stacks) {
    TESSERA_ASSIGN_OR_RETURN(OwnedTensor host,
                             stack_experts(w, type, st.role, i, experts_, st.n, st.k));
    TESSERA_ASSIGN_OR_RETURN(*st.out, resident(std::move(host)));
  }
  if (w.find(scale_inv_name(moe_weight_name(type, MoeWeight::kExpertGate, i, 0)))) {
    Tensor* scales[] = {&m.s_gate, &m.s_up, &m.s_down};
    for (int s = 0; s < 3; ++s) {
      TESSERA_ASSIGN_OR_RETURN(OwnedTensor host, stack_experts(w, type, stacks[s].role, i, experts_,
                                                               stacks[s].n, stacks[s].k, true));
      TESSERA_ASSIGN_OR_RETURN(*scales[s], resident(std::move(host)));
    }
  }
  if (mla_ && config_.n_shared_experts > 0) {
    const int64_t f = config_.n_shared_experts * moe_inter_;
    TESSERA_ASSIGN_OR_RETURN(
        m.shared.gate, projection(moe_weight_name(type, MoeWeight::kSharedGate, i), f, hidden_));
    TESSERA_ASSIGN_OR_RETURN(
        m.shared.up, projection(moe_weight_name(type, MoeWeight::kSharedUp, i), f, hidden_));
    TESSERA_ASSIGN_OR_RETURN(
        m.shared.down, projection(moe_weight_name(type, MoeWeight::kSharedDown, i), hidden_, f));
  }
  return {};
}

Status DeepseekModel::ffn_block(Layer& l, int64_t t) {
  backend::Backend& be = *backend_;
  Tensor x = ws_.x.slice_rows(0, t), xn = ws_.xn.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.rms_norm(x, l.ffn_norm, eps_, xn));
  if (l.is_moe) return moe_block(l.moe, t);
  Tensor proj = ws_.proj.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(dense_mlp(l.mlp, t, proj));
  return be.add(x, proj, x);
}

// out = down(silu(gate(xn)) * up(xn)).   xn, out: [t, hidden]
Status DeepseekModel::dense_mlp(const Mlp& m, int64_t t, Tensor out) {
  backend::Backend& be = *backend_;
  const int64_t f = m.gate.weight.dim(0);
  Tensor xn = ws_.xn.slice_rows(0, t);
  Tensor gate = Tensor(ws_.gate.data(), DType::kF32, {t, f});
  Tensor up = Tensor(ws_.up.data(), DType::kF32, {t, f});
  TESSERA_RETURN_IF_ERROR(linear(xn, m.gate, gate));
  TESSERA_RETURN_IF_ERROR(linear(xn, m.up, up));
  TESSERA_RETURN_IF_ERROR(be.silu_mul(gate, up, gate));
  return linear(gate, m.down, out);
}

Status DeepseekModel::experts(const Tensor& x, const Tensor& w, const Tensor& scale,
                              const Tensor& ids, Tensor out) {
  if (scale.empty()) return backend_->moe_grouped_matmul(x, w, ids, out);
  return backend_->moe_grouped_matmul_block_scaled(x, w, scale, ids, backend::BlockScaleParams{},
                                                   out);
}

Status DeepseekModel::moe_block(Moe& m, int64_t t) {
  backend::Backend& be = *backend_;
  const int64_t k = top_k_, inter = moe_inter_;
  Tensor x = ws_.x.slice_rows(0, t), xn = ws_.xn.slice_rows(0, t);
  Tensor logits = ws_.router_logits.slice_rows(0, t);
  Tensor ids = ws_.ids.slice_rows(0, t), weights = ws_.weights.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.matmul(xn, m.router, logits));
  TESSERA_RETURN_IF_ERROR(be.moe_route(logits, m.bias, route_, ids, weights));

  Tensor egate(ws_.egate.data(), DType::kF32, {t, k, inter});
  Tensor eup(ws_.eup.data(), DType::kF32, {t, k, inter});
  TESSERA_RETURN_IF_ERROR(experts(xn, m.w_gate, m.s_gate, ids, egate));
  TESSERA_RETURN_IF_ERROR(experts(xn, m.w_up, m.s_up, ids, eup));
  Tensor act = egate.reshape({t * k, inter});
  TESSERA_RETURN_IF_ERROR(be.silu_mul(act, eup.reshape({t * k, inter}), act));
  // Down projection: row (t, j) uses expert ids[t, j] — the same ids viewed as [t * k, 1].
  Tensor edown(ws_.edown.data(), DType::kF32, {t * k, 1, hidden_});
  TESSERA_RETURN_IF_ERROR(
      experts(act, m.w_down, m.s_down, Tensor(ids.data(), DType::kI32, {t * k, 1}), edown));

  // x += sum_j weights[t, j] * edown[t, j] (+ shared experts).
  Tensor proj = ws_.proj.slice_rows(0, t);
  TESSERA_RETURN_IF_ERROR(be.moe_combine(edown.reshape({t, k, hidden_}), weights, proj));
  TESSERA_RETURN_IF_ERROR(be.add(x, proj, x));
  if (m.shared.gate.weight.empty()) return {};
  TESSERA_RETURN_IF_ERROR(dense_mlp(m.shared, t, proj));
  return be.add(x, proj, x);
}

}  // namespace tessera::model

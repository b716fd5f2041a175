//! The sparse MoE block of Qwen3-VL-MoE (spec §4.5, §2.3): a softmax router, top-k with
//! renormalised weights, and fused experts run grouped — the tokens routed to one expert are
//! gathered and multiplied once — never token by token and never all experts densely.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::config::{Config, Dialect, MoeConfig};
use super::moe_cpu::Weight as CpuWeight;
use super::quant::{Linear, Quant};
use super::weights::{rows_name, serves_rows};
use crate::{Error, Result};

/// How the fused expert tensors are stored (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertLayout {
    /// Hub files (transformers 4.57): `gate_up_proj [E, D, 2I]`, `down_proj [E, I, D]`, used as x·W.
    Hub,
    /// transformers 5 `save_pretrained`: `gate_up_proj [E, 2I, D]`, `down_proj [E, D, I]`
    /// (nn.Linear orientation, used as x·Wᵀ).
    Linear,
}

impl ExpertLayout {
    pub(crate) fn gate_up_shape(self, e: usize, d: usize, i: usize) -> [usize; 3] {
        match self {
            Self::Hub => [e, d, 2 * i],
            Self::Linear => [e, 2 * i, d],
        }
    }

    pub(crate) fn down_shape(self, e: usize, d: usize, i: usize) -> [usize; 3] {
        match self {
            Self::Hub => [e, i, d],
            Self::Linear => [e, d, i],
        }
    }

    /// [`ExpertLayout::decide`], else the dialect's own layout.
    fn decide_or_dialect(
        gate_up: &[usize],
        down: &[usize],
        sizes: (usize, usize, usize),
        dialect: Dialect,
    ) -> Self {
        Self::decide(gate_up, down, sizes, dialect).unwrap_or(match dialect {
            Dialect::Hub => Self::Hub,
            Dialect::Transformers5 => Self::Linear,
        })
    }

    /// Decides the orientation from stored shapes: whichever tensor's shape tells the two
    /// layouts apart (down_proj unless D = I, gate_up_proj unless D = 2I) decides; only if
    /// neither does (or they disagree) the file dialect does (§2.3, §1.5).
    pub fn decide(
        gate_up: &[usize],
        down: &[usize],
        (e, d, i): (usize, usize, usize),
        dialect: Dialect,
    ) -> Option<Self> {
        let vote = |shape: &[usize], hub: [usize; 3], linear: [usize; 3]| {
            if hub == linear {
                None
            } else if shape == hub {
                Some(Self::Hub)
            } else if shape == linear {
                Some(Self::Linear)
            } else {
                None
            }
        };
        let by_down = vote(
            down,
            Self::Hub.down_shape(e, d, i),
            Self::Linear.down_shape(e, d, i),
        );
        let by_gate_up = vote(
            gate_up,
            Self::Hub.gate_up_shape(e, d, i),
            Self::Linear.gate_up_shape(e, d, i),
        );
        match (by_down, by_gate_up) {
            (Some(a), Some(b)) if a != b => None,
            (Some(a), _) | (None, Some(a)) => Some(a),
            (None, None) => {
                let fallback = match dialect {
                    Dialect::Hub => Self::Hub,
                    Dialect::Transformers5 => Self::Linear,
                };
                // Only a fallback for shapes that fit it; anything else is a bad tensor.
                (gate_up == fallback.gate_up_shape(e, d, i) && down == fallback.down_shape(e, d, i))
                    .then_some(fallback)
            }
        }
    }
}

/// `Qwen3VLMoeTextTopKRouter` (`mlp.gate`): `weight [E, D]`, no bias.
#[derive(Debug, Clone)]
pub struct TopKRouter {
    weight: Tensor,
    top_k: usize,
}

/// Routing of a batch of tokens: for each token its k experts and renormalised f32 weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub experts: Vec<Vec<u32>>,
    pub weights: Vec<Vec<f32>>,
}

impl TopKRouter {
    /// `x` `[N, D]` -> router logits `[N, E]` in the activation dtype, and the routing.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Routing)> {
        // 1. Logits in the activation dtype.
        let logits = super::cpu_mm::linear(x, &self.weight)?;
        // 2. Softmax in f32, BEFORE top-k.
        let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
        // 3. Top-k and renormalisation over the k, always (norm_topk_prob is ignored by HF).
        let probs: Vec<Vec<f32>> = probs.to_vec2()?;
        let mut routing = Routing {
            experts: Vec::with_capacity(probs.len()),
            weights: Vec::with_capacity(probs.len()),
        };
        for row in &probs {
            let (experts, weights) = top_k_renormalised(row, self.top_k);
            routing.experts.push(experts);
            routing.weights.push(weights);
        }
        Ok((logits, routing))
    }
}

/// The k largest entries (descending; on equal values the lower expert id first, as
/// `torch.topk` on CPU returns them) and their values divided by their f32 sum.
pub fn top_k_renormalised(probs: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    order.sort_by(|&a, &b| {
        probs[b as usize]
            .total_cmp(&probs[a as usize])
            .then(a.cmp(&b))
    });
    order.truncate(k);
    let values: Vec<f32> = order.iter().map(|&e| probs[e as usize]).collect();
    let sum: f32 = values.iter().sum();
    (order, values.iter().map(|v| v / sum).collect())
}

/// One expert matrix: a dense view oriented for `x · W`, or quantized (`x · Wᵀ` with W stored
/// `[out, in]`, the layout the quantized kernels read).
#[derive(Debug, Clone)]
enum ExpertMat {
    Dense(Tensor),
    Quantized(Linear),
}

impl ExpertMat {
    /// `w_in_out` is the expert's `[in, out]` view (possibly transposed, as loaded).
    fn new(w_in_out: Tensor, quant: Quant) -> Result<Self> {
        if quant == Quant::None {
            return Ok(Self::Dense(w_in_out));
        }
        // Quantized straight from the transposed view, a few rows at a time (no [out, in] copy).
        let lin = Linear::from_weight(w_in_out.t()?, quant)?;
        Ok(match lin.dense_weight() {
            // Width not a multiple of the block: keep the view as loaded (no copy kept).
            Some(_) => Self::Dense(w_in_out),
            None => Self::Quantized(lin),
        })
    }

    fn serves_cpu_path(&self) -> bool {
        match self {
            Self::Dense(w) => w.dtype() == DType::BF16,
            Self::Quantized(l) => l.blocks().is_some(),
        }
    }

    /// This matrix for the parallel CPU path (`moe_cpu`, where [`Self::serves_cpu_path`]):
    /// a bf16 `[out, in]` view, or the blocks.
    fn cpu_weight(&self) -> Result<CpuWeight<'_>> {
        Ok(match self {
            Self::Dense(w) => CpuWeight::Dense(w.t()?),
            Self::Quantized(l) => CpuWeight::Blocks(l.blocks().ok_or_else(|| {
                Error::from(candle_core::Error::Msg("expert not in CPU blocks".into()))
            })?),
        })
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            // On the CPU in bf16/f16: W viewed back as [out, in] (no copy for the v5 layout).
            Self::Dense(w) if super::cpu_mm::applies(w) => super::cpu_mm::linear(x, &w.t()?),
            Self::Dense(w) => Ok(x.matmul(w)?),
            Self::Quantized(l) => l.forward(x),
        }
    }
}

/// `Qwen3VLMoeTextExperts` (`mlp.experts`): the fused tensors, split once at load into
/// per-expert views oriented for `x · W` so the hot path does no transposes or copies.
#[derive(Debug, Clone)]
pub struct Experts {
    /// Per expert `[D, 2I]`: columns `0..I` gate, `I..2I` up.
    gate_up_proj: Vec<ExpertMat>,
    /// Per expert `[I, D]`.
    down_proj: Vec<ExpertMat>,
    intermediate: usize,
}

/// The experts' settings of a model with MoE layers; a config without them cannot have one.
fn moe_config(cfg: &Config) -> Result<&MoeConfig> {
    cfg.text.moe.as_ref().ok_or_else(|| {
        Error::bad_config(
            "text_config.num_experts",
            "MoE layer in a model without experts",
        )
    })
}

impl Experts {
    fn new(
        cfg: &Config,
        layout: &mut Option<ExpertLayout>,
        quant: Quant,
        vb: VarBuilder,
    ) -> Result<Self> {
        let moe = moe_config(cfg)?;
        let (e, d, i) = (
            moe.num_experts,
            cfg.text.hidden_size,
            moe.moe_intermediate_size,
        );
        if quant != Quant::None
            && serves_rows(&vb, "gate_up_proj", e)
            && serves_rows(&vb, "down_proj", e)
        {
            return Self::load_each(cfg, layout, quant, vb, (e, d, i));
        }
        let (gate_up, down, chosen) = match *layout {
            Some(l) => (
                vb.get(l.gate_up_shape(e, d, i).to_vec(), "gate_up_proj")?,
                None,
                l,
            ),
            None => {
                // First MoE layer: load as stored and let the shapes decide.
                let gate_up = vb.get_unchecked("gate_up_proj")?;
                let down = vb.get_unchecked("down_proj")?;
                let l = ExpertLayout::decide_or_dialect(
                    gate_up.dims(),
                    down.dims(),
                    (e, d, i),
                    cfg.dialect,
                );
                // A tensor that does not fit the chosen layout: the checked load names it and
                // its file (the backend compares header shapes before reading any data).
                if gate_up.dims() != l.gate_up_shape(e, d, i) {
                    vb.get(l.gate_up_shape(e, d, i).to_vec(), "gate_up_proj")?;
                }
                if down.dims() != l.down_shape(e, d, i) {
                    vb.get(l.down_shape(e, d, i).to_vec(), "down_proj")?;
                }
                *layout = Some(l);
                (gate_up, Some(down), l)
            }
        };
        // Each expert's matrices, as views of the fused tensor (dense: kept, no copy) or
        // quantized from them. Quantized, the fused full-precision tensors are transient and
        // are held one at a time: `down_proj` is read (again, in the first layer) only once the
        // gate/up projections are quantized and their fused tensor is gone.
        let split = |fused: Tensor| -> Result<Vec<ExpertMat>> {
            (0..e)
                .map(|ex| {
                    let w = fused.get(ex)?;
                    let w = match chosen {
                        ExpertLayout::Hub => w,
                        // A transposed view: candle's matmul reads it through strides, no copy.
                        ExpertLayout::Linear => w.t()?,
                    };
                    ExpertMat::new(w, quant)
                })
                .collect()
        };
        let down = down.filter(|_| quant == Quant::None);
        let gate_up_proj = split(gate_up)?;
        let down = match down {
            Some(t) => t,
            None => vb.get(chosen.down_shape(e, d, i).to_vec(), "down_proj")?,
        };
        let down_proj = split(down)?;
        Ok(Self {
            gate_up_proj,
            down_proj,
            intermediate: i,
        })
    }

    /// Quantized experts read one expert at a time ([`rows_name`]), so no fused full-precision
    /// tensor is ever held whole.
    fn load_each(
        cfg: &Config,
        layout: &mut Option<ExpertLayout>,
        quant: Quant,
        vb: VarBuilder,
        (e, d, i): (usize, usize, usize),
    ) -> Result<Self> {
        let chosen = match *layout {
            Some(l) => l,
            None => {
                // The stored shapes, from the first expert of each.
                let dims = |name: &str| -> Result<Vec<usize>> {
                    let first = vb.get_unchecked(&rows_name(name, 0, 1))?;
                    Ok([&[e][..], &first.dims()[1..]].concat())
                };
                let l = ExpertLayout::decide_or_dialect(
                    &dims("gate_up_proj")?,
                    &dims("down_proj")?,
                    (e, d, i),
                    cfg.dialect,
                );
                *layout = Some(l);
                l
            }
        };
        let each = |name: &str, full: [usize; 3]| -> Result<Vec<ExpertMat>> {
            (0..e)
                .map(|ex| {
                    let one = [1, full[1], full[2]];
                    let w = vb
                        .get(one.to_vec(), &rows_name(name, ex, ex + 1))
                        .or_else(|err| {
                            // Reported against the fused tensor, as a whole load reports it
                            // (the backend compares shapes before reading any data).
                            vb.get(full.to_vec(), name).and(Err(err))
                        })?
                        .squeeze(0)?;
                    let w = match chosen {
                        ExpertLayout::Hub => w,
                        ExpertLayout::Linear => w.t()?,
                    };
                    ExpertMat::new(w, quant)
                })
                .collect()
        };
        Ok(Self {
            gate_up_proj: each("gate_up_proj", chosen.gate_up_shape(e, d, i))?,
            down_proj: each("down_proj", chosen.down_shape(e, d, i))?,
            intermediate: i,
        })
    }

    /// Whether the parallel CPU path applies: bf16 activations on a CPU with oneDNN and
    /// AVX512-BF16, every expert dense bf16 or in blocks. Checked per call without building
    /// anything: only the chosen experts' views are made (8 of 128 in a decode step).
    fn cpu_path(&self, x: &Tensor) -> bool {
        super::cpu_mm::onednn_bf16(x)
            && super::cpu_mm::serial_available()
            && self
                .gate_up_proj
                .iter()
                .chain(&self.down_proj)
                .all(ExpertMat::serves_cpu_path)
    }

    /// `x` `[N, D]`, routing of the N tokens -> `[N, D]`.
    ///
    /// Each (token, expert) product `w · y` is formed in the activation dtype and the k products
    /// of a token are summed in f32 and rounded once: what transformers 5.24's default
    /// (`grouped_mm`) expert kernel does (§4.5), bit-for-bit relevant only below f32.
    pub fn forward(&self, x: &Tensor, routing: &Routing) -> Result<Tensor> {
        self.forward_with(x, routing, true)
    }

    /// `forward`, with the parallel CPU path allowed or not (tests compare the two).
    fn forward_with(&self, x: &Tensor, routing: &Routing, parallel: bool) -> Result<Tensor> {
        let (n, d) = x.dims2()?;
        let dtype = x.dtype();
        let device = x.device();

        // 1. Group (token, weight) pairs by expert.
        let num_experts = self.gate_up_proj.len();
        let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); num_experts];
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); num_experts];
        for (tok, (exps, ws)) in routing.experts.iter().zip(&routing.weights).enumerate() {
            for (&e, &w) in exps.iter().zip(ws) {
                tokens[e as usize].push(tok as u32);
                weights[e as usize].push(w);
            }
        }

        // 2'. bf16 on a CPU with oneDNN: the chosen experts in parallel, one task each.
        if parallel && self.cpu_path(x) {
            let chosen: Vec<usize> = (0..num_experts)
                .filter(|&e| !tokens[e].is_empty())
                .collect();
            let views = chosen
                .iter()
                .map(|&e| {
                    Ok((
                        self.gate_up_proj[e].cpu_weight()?,
                        self.down_proj[e].cpu_weight()?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let experts: Vec<super::moe_cpu::Expert> = chosen
                .iter()
                .zip(&views)
                .map(|(&e, (gate_up, down))| super::moe_cpu::Expert {
                    gate_up,
                    down,
                    tokens: &tokens[e],
                    weights: &weights[e],
                })
                .collect();
            return super::moe_cpu::forward(x, &experts, self.intermediate);
        }

        // 2. One gather + two matmuls per expert that was chosen at all.
        let mut outs = Vec::new();
        let mut rows = Vec::new();
        for e in 0..num_experts {
            if tokens[e].is_empty() {
                continue;
            }
            let idx = Tensor::new(tokens[e].as_slice(), device)?;
            let xe = x.index_select(&idx, 0)?; // (n_e, D)
            let gu = self.gate_up_proj[e].apply(&xe)?; // (n_e, 2I)
            let gate = gu.narrow(1, 0, self.intermediate)?;
            let up = gu.narrow(1, self.intermediate, self.intermediate)?;
            let h = super::cpu_ops::silu_mul(&gate, &up)?; // (n_e, I)
            let y = self.down_proj[e].apply(&h)?; // (n_e, D)
                                                  // Weights were renormalised in f32 and are cast to the activation dtype (HF).
            let w = Tensor::new(weights[e].as_slice(), device)?
                .to_dtype(dtype)?
                .reshape((tokens[e].len(), 1))?;
            outs.push(y.broadcast_mul(&w)?.to_dtype(DType::F32)?);
            rows.push(idx);
        }
        if outs.is_empty() {
            return Ok(Tensor::zeros((n, d), dtype, device)?);
        }

        // 3. Scatter-add every contribution into an f32 accumulator in one op, round once.
        let outs = Tensor::cat(&outs, 0)?;
        let rows = Tensor::cat(&rows, 0)?;
        let acc = Tensor::zeros((n, d), DType::F32, device)?.index_add(&rows, &outs, 0)?;
        Ok(acc.to_dtype(dtype)?)
    }
}

/// `Qwen3VLMoeTextSparseMoeBlock` (`mlp`): router `gate` + fused `experts`, no shared expert.
#[derive(Debug, Clone)]
pub struct SparseMoeBlock {
    gate: TopKRouter,
    experts: Experts,
}

impl SparseMoeBlock {
    pub fn new(
        cfg: &Config,
        layout: &mut Option<ExpertLayout>,
        quant: Quant,
        vb: VarBuilder,
    ) -> Result<Self> {
        let moe = moe_config(cfg)?;
        let gate = TopKRouter {
            weight: vb
                .pp("gate")
                .get((moe.num_experts, cfg.text.hidden_size), "weight")?,
            top_k: moe.num_experts_per_tok,
        };
        Ok(Self {
            gate,
            experts: Experts::new(cfg, layout, quant, vb.pp("experts"))?,
        })
    }

    /// `x` `[B, L, D]` -> (`[B, L, D]`, router logits `[B·L, E]`).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, l, d) = x.dims3()?;
        let flat = x.reshape((b * l, d))?;
        let (router_logits, routing) = self.gate.forward(&flat)?;
        let out = self.experts.forward(&flat, &routing)?;
        Ok((out.reshape((b, l, d))?, router_logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layout_from_unambiguous_shape() {
        let (e, d, i) = (4, 6, 5);
        let hub = (vec![e, d, 2 * i], vec![e, i, d]);
        let lin = (vec![e, 2 * i, d], vec![e, d, i]);
        for dialect in [Dialect::Hub, Dialect::Transformers5] {
            assert_eq!(
                ExpertLayout::decide(&hub.0, &hub.1, (e, d, i), dialect),
                Some(ExpertLayout::Hub)
            );
            assert_eq!(
                ExpertLayout::decide(&lin.0, &lin.1, (e, d, i), dialect),
                Some(ExpertLayout::Linear)
            );
        }
        // D = 2I: gate_up is square-ish and cannot tell; down_proj decides (what 5.24 gets
        // wrong, §2.3).
        let (d, i) = (8, 4);
        assert_eq!(
            ExpertLayout::decide(&[e, 8, 8], &[e, i, d], (e, d, i), Dialect::Transformers5),
            Some(ExpertLayout::Hub)
        );
        // D = I: down_proj cannot tell; gate_up_proj decides.
        let (d, i) = (4, 4);
        assert_eq!(
            ExpertLayout::decide(&[e, 8, 4], &[e, 4, 4], (e, d, i), Dialect::Hub),
            Some(ExpertLayout::Linear)
        );
        // Shapes that fit neither layout.
        assert_eq!(
            ExpertLayout::decide(&[e, 3, 3], &[e, 3, 3], (e, 6, 5), Dialect::Hub),
            None
        );
    }

    #[test]
    fn top_k_is_descending_and_renormalised() {
        let (experts, weights) = top_k_renormalised(&[0.1, 0.4, 0.2, 0.3], 2);
        assert_eq!(experts, vec![1, 3]);
        assert!((weights[0] - 0.4 / 0.7).abs() < 1e-7);
        assert!((weights[1] - 0.3 / 0.7).abs() < 1e-7);
        let (experts, _) = top_k_renormalised(&[0.25, 0.25, 0.25, 0.25], 3);
        assert_eq!(experts, vec![0, 1, 2]);
    }

    /// Grouped experts against a token-by-token evaluation written out by hand, in both stored
    /// layouts.
    #[test]
    fn grouped_experts_match_per_token_loop() -> Result<()> {
        let dev = Device::Cpu;
        let (e, d, i, n) = (5usize, 6usize, 3usize, 7usize);
        let gate_up = Tensor::randn(0f32, 1.0, (e, d, 2 * i), &dev)?;
        let down = Tensor::randn(0f32, 1.0, (e, i, d), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (n, d), &dev)?;
        let routing = Routing {
            experts: (0..n as u32).map(|t| vec![t % 5, (t + 2) % 5]).collect(),
            weights: (0..n).map(|t| vec![0.75, 0.25 + t as f32 * 0.01]).collect(),
        };
        let mut want = Vec::new();
        for t in 0..n {
            let xt = x.get(t)?.unsqueeze(0)?;
            let mut acc = Tensor::zeros((1, d), DType::F32, &dev)?;
            for (&ex, &w) in routing.experts[t].iter().zip(&routing.weights[t]) {
                let gu = xt.matmul(&gate_up.get(ex as usize)?)?;
                let h = (gu.narrow(1, 0, i)?.silu()? * gu.narrow(1, i, i)?)?;
                acc = (acc + (h.matmul(&down.get(ex as usize)?)? * w as f64)?)?;
            }
            want.push(acc);
        }
        let want = Tensor::cat(&want, 0)?;
        // The inputs are random N(0, 1), so outputs reach tens: f32 rounding in another
        // summation order is relative to their size (an absolute 1e-5 failed now and then).
        let size = want.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);

        for layout in [ExpertLayout::Hub, ExpertLayout::Linear] {
            let (gu, dn): (Vec<Tensor>, Vec<Tensor>) = (0..e)
                .map(|ex| match layout {
                    ExpertLayout::Hub => (gate_up.get(ex).unwrap(), down.get(ex).unwrap()),
                    // Store transposed (as a v5 file would), then view back as the model does.
                    ExpertLayout::Linear => (
                        gate_up
                            .get(ex)
                            .unwrap()
                            .t()
                            .unwrap()
                            .contiguous()
                            .unwrap()
                            .t()
                            .unwrap(),
                        down.get(ex)
                            .unwrap()
                            .t()
                            .unwrap()
                            .contiguous()
                            .unwrap()
                            .t()
                            .unwrap(),
                    ),
                })
                .unzip();
            let experts = Experts {
                gate_up_proj: gu.into_iter().map(ExpertMat::Dense).collect(),
                down_proj: dn.into_iter().map(ExpertMat::Dense).collect(),
                intermediate: i,
            };
            let got = experts.forward(&x, &routing)?;
            let diff: f32 = (got - &want)?.abs()?.max_all()?.to_scalar()?;
            assert!(
                diff < 1e-5 * size,
                "{layout:?}: {diff} (outputs up to {size})"
            );
        }
        Ok(())
    }

    /// In bf16 the parallel CPU path (one task per expert) gives the grouped path's numbers bit
    /// for bit, in both layouts, dense and Q8_0, for experts with few rows (GEMV, block dot
    /// products) and many (GEMM, dequantized GEMM).
    #[test]
    fn parallel_cpu_experts_equal_grouped() -> Result<()> {
        let dev = Device::Cpu;
        let (e, d, i, n) = (5usize, 64usize, 64usize, 80usize);
        let bf = |t: Tensor| t.to_dtype(DType::BF16);
        let gate_up = bf(Tensor::randn(0f32, 1.0, (e, d, 2 * i), &dev)?)?;
        let down = bf(Tensor::randn(0f32, 1.0, (e, i, d), &dev)?)?;
        let x = bf(Tensor::randn(0f32, 1.0, (n, d), &dev)?)?;
        if crate::qwen3_vl::cpu_ops::skip_without_bf16_kernels(
            !super::super::cpu_mm::serial_available(),
            "no oneDNN/AVX512-BF16 here",
        ) {
            return Ok(());
        }
        // Expert 4 gets three tokens (the GEMV path), the others many (the GEMM path).
        let routing = Routing {
            experts: (0..n as u32)
                .map(|t| vec![t % 4, if t < 3 { 4 } else { (t + 1) % 4 }])
                .collect(),
            weights: (0..n).map(|t| vec![0.6 + t as f32 * 0.003, 0.4]).collect(),
        };
        for (layout, quant) in [
            (ExpertLayout::Hub, Quant::None),
            (ExpertLayout::Linear, Quant::None),
            (ExpertLayout::Hub, Quant::Q8_0),
        ] {
            let view = |w: Tensor| -> Result<Tensor> {
                Ok(match layout {
                    ExpertLayout::Hub => w,
                    ExpertLayout::Linear => w.t()?.contiguous()?.t()?,
                })
            };
            let experts = Experts {
                gate_up_proj: (0..e)
                    .map(|ex| ExpertMat::new(view(gate_up.get(ex)?)?, quant))
                    .collect::<Result<_>>()?,
                down_proj: (0..e)
                    .map(|ex| ExpertMat::new(view(down.get(ex)?)?, quant))
                    .collect::<Result<_>>()?,
                intermediate: i,
            };
            let parallel = experts.forward_with(&x, &routing, true)?;
            let grouped = experts.forward_with(&x, &routing, false)?;
            assert_eq!(
                parallel.to_vec2::<half::bf16>()?,
                grouped.to_vec2::<half::bf16>()?,
                "{layout:?} {quant:?}"
            );
            if quant != Quant::None {
                assert!(matches!(experts.gate_up_proj[0], ExpertMat::Quantized(_)));
            }
        }
        Ok(())
    }
}

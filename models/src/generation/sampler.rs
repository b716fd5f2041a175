//! Picks the next token from a logits vector: penalties, then greedy or seeded sampling through
//! candle-transformers' `LogitsProcessor` (temperature → top-k → top-p, as transformers orders them).

use std::collections::HashSet;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use super::SamplingParams;
use crate::Result;

pub struct Sampler {
    processor: LogitsProcessor,
    repetition_penalty: f32,
    presence_penalty: f32,
    /// Prompt and generated ids: transformers' repetition penalty looks at both.
    seen: HashSet<u32>,
    /// Generated ids only: the presence penalty (vLLM semantics) looks at the output.
    generated: HashSet<u32>,
}

impl Sampler {
    pub fn new(p: &SamplingParams, prompt_ids: &[u32]) -> Self {
        let sampling = if p.is_greedy() {
            Sampling::ArgMax
        } else {
            match (p.top_k > 0, p.top_p < 1.0) {
                (true, true) => Sampling::TopKThenTopP {
                    k: p.top_k,
                    p: p.top_p,
                    temperature: p.temperature,
                },
                (true, false) => Sampling::TopK {
                    k: p.top_k,
                    temperature: p.temperature,
                },
                (false, true) => Sampling::TopP {
                    p: p.top_p,
                    temperature: p.temperature,
                },
                (false, false) => Sampling::All {
                    temperature: p.temperature,
                },
            }
        };
        Self {
            processor: LogitsProcessor::from_sampling(p.seed, sampling),
            repetition_penalty: p.repetition_penalty,
            presence_penalty: p.presence_penalty,
            seen: prompt_ids.iter().copied().collect(),
            generated: HashSet::new(),
        }
    }

    /// Samples from `logits` (`[vocab]`, any float dtype) and records the choice.
    pub fn sample(&mut self, logits: &Tensor) -> Result<u32> {
        let logits = logits.flatten_all()?.to_dtype(DType::F32)?;
        let penalised = self.repetition_penalty != 1.0 || self.presence_penalty != 0.0;
        let logits = if penalised {
            let mut v = logits.to_vec1::<f32>()?;
            if self.repetition_penalty != 1.0 {
                for &id in &self.seen {
                    if let Some(x) = v.get_mut(id as usize) {
                        *x = if *x < 0.0 {
                            *x * self.repetition_penalty
                        } else {
                            *x / self.repetition_penalty
                        };
                    }
                }
            }
            for &id in &self.generated {
                if let Some(x) = v.get_mut(id as usize) {
                    *x -= self.presence_penalty;
                }
            }
            let n = v.len();
            Tensor::from_vec(v, n, logits.device())?
        } else {
            logits
        };
        let id = self.processor.sample(&logits)?;
        self.seen.insert(id);
        self.generated.insert(id);
        Ok(id)
    }
}

//! The decoder's KV cache: keys and values written in place into a preallocated buffer that
//! doubles when full, so a decode step copies only its own token (candle's `ConcatKvCache`
//! re-concatenates the whole cache every step, `KvCache` grows by a constant and reallocates
//! on every new sequence). A new sequence reuses the buffer.

use candle_core::Tensor;

use crate::Result;

/// Smallest buffer along the sequence axis; a prompt longer than this sizes it directly.
const MIN_CAPACITY: usize = 256;

#[derive(Debug, Default)]
pub struct KvCache {
    /// `[B, H, capacity, hd]` each, contiguous; rows `0..len` are valid.
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

/// A clone owns its own buffer: appends to one must never show up in the other (the buffer is
/// written in place). If the copy cannot be allocated the clone starts empty.
impl Clone for KvCache {
    fn clone(&self) -> Self {
        let copy = |t: &Option<Tensor>| t.as_ref().map(|t| t.copy()).transpose();
        match (copy(&self.k), copy(&self.v)) {
            (Ok(k), Ok(v)) => Self {
                k,
                v,
                len: self.len,
            },
            _ => Self::default(),
        }
    }
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the buffer holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Forgets the tokens, keeps the buffer (its contents past `len` are never read).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Appends `k`, `v` `[B, H, L, hd]` and returns views of everything held, `[B, H, len, hd]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = k.contiguous()?;
        let v = v.contiguous()?;
        let l = k.dim(2)?;
        let need = self.len + l;
        let fits = self
            .k
            .as_ref()
            .is_some_and(|buf| buf.dims()[2] >= need && compatible(buf, &k));
        if !fits {
            let cap = grown_capacity(self.capacity(), need);
            let keep = if self.k.as_ref().is_some_and(|b| compatible(b, &k)) {
                self.len
            } else {
                // Another shape or dtype: a new sequence on a differently configured call.
                0
            };
            self.k = Some(grow(self.k.as_ref(), &k, cap, keep)?);
            self.v = Some(grow(self.v.as_ref(), &v, cap, keep)?);
            self.len = keep;
        }
        let (kb, vb) = (
            self.k.as_ref().expect("allocated"),
            self.v.as_ref().expect("allocated"),
        );
        kb.slice_set(&k, 2, self.len)?;
        vb.slice_set(&v, 2, self.len)?;
        self.len += l;
        Ok((kb.narrow(2, 0, self.len)?, vb.narrow(2, 0, self.len)?))
    }
}

/// The capacity a buffer of `capacity` positions has after a call that needs `need` of them
/// (unchanged if they fit). Benchmarks use it to size the cache they measure.
pub fn grown_capacity(capacity: usize, need: usize) -> usize {
    if need <= capacity {
        capacity
    } else {
        need.max(2 * capacity).max(MIN_CAPACITY)
    }
}

/// Same batch, heads, head size, dtype and device: only the sequence axis may differ.
fn compatible(buf: &Tensor, x: &Tensor) -> bool {
    let (b, x_dims) = (buf.dims(), x.dims());
    b.len() == 4
        && x_dims.len() == 4
        && b[0] == x_dims[0]
        && b[1] == x_dims[1]
        && b[3] == x_dims[3]
        && buf.dtype() == x.dtype()
        && buf.device().same_device(x.device())
}

/// A `[B, H, cap, hd]` buffer shaped like `like`, holding the first `keep` rows of `old`.
fn grow(old: Option<&Tensor>, like: &Tensor, cap: usize, keep: usize) -> Result<Tensor> {
    let (b, h, _, hd) = like.dims4()?;
    let buf = Tensor::zeros((b, h, cap, hd), like.dtype(), like.device())?;
    if let (Some(old), true) = (old, keep > 0) {
        buf.slice_set(&old.narrow(2, 0, keep)?.contiguous()?, 2, 0)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Appending in pieces across several growths equals one concatenation; a reset starts
    /// over in the same buffer.
    #[test]
    fn appends_equal_concatenation() -> Result<()> {
        let dev = Device::Cpu;
        let mut cache = KvCache::new();
        let mut all_k = Vec::new();
        let mut all_v = Vec::new();
        for (i, l) in [300usize, 1, 1, 250, 7].into_iter().enumerate() {
            let k = Tensor::randn(0f32, 1.0, (1, 2, l, 4), &dev)?;
            let v = (Tensor::randn(0f32, 1.0, (1, 2, l, 4), &dev)? + i as f64)?;
            let (gk, gv) = cache.append(&k, &v)?;
            all_k.push(k);
            all_v.push(v);
            let want_k = Tensor::cat(&all_k, 2)?;
            let want_v = Tensor::cat(&all_v, 2)?;
            let dk: f32 = (gk - want_k)?.abs()?.max_all()?.to_scalar()?;
            let dv: f32 = (gv - want_v)?.abs()?.max_all()?.to_scalar()?;
            assert_eq!((dk, dv), (0.0, 0.0));
        }
        assert_eq!(cache.len(), 559);
        assert!(cache.capacity() >= 559);
        let cap = cache.capacity();
        cache.reset();
        assert!(cache.is_empty());
        let k = Tensor::ones((1, 2, 3, 4), DType::F32, &dev)?;
        let (gk, _) = cache.append(&k, &k)?;
        assert_eq!(gk.dims(), &[1, 2, 3, 4]);
        assert_eq!(cache.capacity(), cap, "a new sequence reuses the buffer");
        // A different head count (another model's call) starts a fresh buffer.
        let k = Tensor::ones((1, 3, 2, 4), DType::F32, &dev)?;
        let (gk, _) = cache.append(&k, &k)?;
        assert_eq!(gk.dims(), &[1, 3, 2, 4]);
        Ok(())
    }
}

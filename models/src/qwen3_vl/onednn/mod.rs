//! bf16 matrix products through oneDNN, the kernel library torch itself uses for them on the CPU.
//!
//! Why: prefill and the vision tower are bound by arithmetic, and CPUs with AVX512-BF16 or AMX
//! multiply bf16 pairs at two (or many) times their f32 rate. Widening bf16 weights to f32 (see
//! `cpu_mm`) leaves those units idle; measured on this project's 2-core EPYC (BENCHMARKS.md),
//! oneDNN's bf16 matmul runs 2.1× its own f32 one. Writing and tuning such GEMM kernels by hand
//! for every x86 generation is exactly what oneDNN is for.
//!
//! The library is loaded at run time (`libdnnl.so.2`, oneDNN 2.x C API) rather than linked, so
//! Glimpse builds and runs everywhere and uses it only where it is installed and where its chosen
//! kernel really is a native bf16 one; otherwise every caller keeps its portable path.
//! `GLIMPSE_ONEDNN=off` turns it off; `GLIMPSE_ONEDNN=/path/to/libdnnl.so.2` names the file.
//!
//! Numerics: exact bf16 products accumulated in f32, one rounding of the result — what torch's
//! bf16 matmul does, and what `cpu_mm`'s f32 path computes, up to summation order.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock};

use half::bf16;

use crate::{Error, Result};

mod ffi;
use ffi::*;

/// Element types oneDNN is asked to read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    Bf16,
    F32,
}

impl Elem {
    fn code(self) -> c_int {
        match self {
            Elem::Bf16 => 2,
            Elem::F32 => 3,
        }
    }
}

/// Slices oneDNN can read or write.
pub trait Element: Copy {
    const ELEM: Elem;
}
impl Element for bf16 {
    const ELEM: Elem = Elem::Bf16;
}
impl Element for f32 {
    const ELEM: Elem = Elem::F32;
}

/// One created matmul primitive.
struct Primitive {
    api: &'static Api,
    pd: Handle,
    primitive: Handle,
    descs: [Box<MemoryDesc>; 4],
    /// The scratchpad's descriptor (owned by `pd`) and size; null / 0 when none is needed.
    scratch_md: *const MemoryDesc,
    scratch_bytes: usize,
}

// SAFETY: oneDNN primitives are immutable once created and may be executed from several
// threads at once when each execution brings its own scratchpad (user scratchpad mode: the
// library's shared one is not thread-safe in builds without DNNL_ENABLE_CONCURRENT_EXEC,
// Debian's among them — two rayon tasks sharing it crashed in a JIT kernel).
unsafe impl Send for Primitive {}
unsafe impl Sync for Primitive {}

impl Drop for Primitive {
    fn drop(&mut self) {
        // SAFETY: both handles were created by this library and are dropped once.
        unsafe {
            (self.api.primitive_destroy)(self.primitive);
            (self.api.pd_destroy)(self.pd);
        }
    }
}

/// The shape and memory layout of one product `C[m, n] = A[m, k] · B[k, n]`, strides in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Strides of A's rows and columns.
    pub a_strides: [usize; 2],
    /// Strides of B along k and along n: `[1, k]` reads a `[n, k]` row-major weight as its
    /// transpose, `[n, 1]` a plain `[k, n]` matrix.
    pub b_strides: [usize; 2],
    pub c_row_stride: usize,
    pub a: Elem,
    pub b: Elem,
    pub c: Elem,
    /// A bias row `[n]` added to every row of C before its rounding (as torch's `F.linear`
    /// does in its f32 accumulators), or None.
    pub bias: Option<Elem>,
}

impl Gemm {
    /// `x[m, k] · W[n, k]ᵀ` with everything row-major and dense.
    pub fn linear(m: usize, n: usize, k: usize, a: Elem, b: Elem, c: Elem) -> Self {
        Self {
            m,
            n,
            k,
            a_strides: [k, 1],
            b_strides: [1, k],
            c_row_stride: n,
            a,
            b,
            c,
            bias: None,
        }
    }

    /// Elements each operand must hold (the largest index read or written, plus one).
    fn extents(&self) -> [usize; 3] {
        let span = |rows: usize, cols: usize, s: [usize; 2]| {
            if rows == 0 || cols == 0 {
                0
            } else {
                (rows - 1) * s[0] + (cols - 1) * s[1] + 1
            }
        };
        [
            span(self.m, self.k, self.a_strides),
            span(self.k, self.n, self.b_strides),
            span(self.m, self.n, [self.c_row_stride, 1]),
        ]
    }
}

const CACHE_LIMIT: usize = 512;

fn cache() -> &'static Mutex<HashMap<Gemm, Arc<Primitive>>> {
    static CACHE: OnceLock<Mutex<HashMap<Gemm, Arc<Primitive>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| match load() {
        Ok(api) => Some(api),
        Err(why) => {
            if std::env::var_os("GLIMPSE_ONEDNN_VERBOSE").is_some() {
                eprintln!("glimpse: oneDNN not used: {why}");
            }
            None
        }
    })
    .as_ref()
}

/// Whether bf16 products run on oneDNN's native bf16 kernels in this process.
pub fn available() -> bool {
    api().is_some()
}

/// The library and kernel in use, or why none is.
pub fn describe() -> String {
    match api() {
        Some(api) => api.description.clone(),
        None => "not used (libdnnl.so.2 with native bf16 kernels not found)".into(),
    }
}

fn primitive(api: &'static Api, g: &Gemm) -> Result<Arc<Primitive>> {
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cache.get(g) {
        return Ok(p.clone());
    }
    // SAFETY: valid entry points; the handles are owned by the returned Primitive.
    let p = unsafe {
        let (pd, descs) = create_pd(api, g).map_err(onednn_error)?;
        let mut primitive: Handle = std::ptr::null_mut();
        if let Err(e) = check(
            (api.primitive_create)(&mut primitive, pd),
            "dnnl_primitive_create",
        ) {
            (api.pd_destroy)(pd);
            return Err(onednn_error(e));
        }
        let scratch_md = (api.query_md)(pd, QUERY_SCRATCHPAD_MD, 0);
        let scratch_bytes = if scratch_md.is_null() {
            0
        } else {
            (api.md_size)(scratch_md)
        };
        Arc::new(Primitive {
            api,
            pd,
            primitive,
            descs,
            scratch_md,
            scratch_bytes,
        })
    };
    if cache.len() >= CACHE_LIMIT {
        // Shapes follow prompt lengths; a bounded cache is enough, recency is not worth tracking.
        cache.clear();
    }
    cache.insert(*g, p.clone());
    Ok(p)
}

fn onednn_error(reason: String) -> Error {
    Error::Kernel {
        library: "oneDNN matmul",
        reason,
    }
}

/// `c = a · b` as laid out by `g`, on `threads` threads. Errors if oneDNN is not available or the
/// slices are too short for the layout.
pub fn gemm<A: Element, B: Element, C: Element>(
    g: &Gemm,
    a: &[A],
    b: &[B],
    c: &mut [C],
    threads: usize,
) -> Result<()> {
    // SAFETY: `c` is exclusively borrowed for the call, and its length is checked.
    unsafe { gemm_raw(g, a, b, None, c.as_mut_ptr(), c.len(), threads) }
}

/// [`gemm`] plus a bias row `[n]` (of B's element type) added to every row of C; `g.bias`
/// must name its type.
pub fn gemm_bias<A: Element, B: Element, C: Element>(
    g: &Gemm,
    a: &[A],
    b: &[B],
    bias: &[B],
    c: &mut [C],
    threads: usize,
) -> Result<()> {
    // SAFETY: as in `gemm`.
    unsafe { gemm_raw(g, a, b, Some(bias), c.as_mut_ptr(), c.len(), threads) }
}

/// [`gemm`] writing through a pointer, for callers whose tasks write interleaved parts of one
/// buffer (attention heads within token rows), where disjoint `&mut` slices cannot be formed.
///
/// # Safety
/// `c` must be valid for writes of `c_len` elements, and while the call runs no other code may
/// read or write the elements the layout touches.
pub unsafe fn gemm_raw<A: Element, B: Element, C: Element>(
    g: &Gemm,
    a: &[A],
    b: &[B],
    bias: Option<&[B]>,
    c: *mut C,
    c_len: usize,
    threads: usize,
) -> Result<()> {
    let api = api().ok_or_else(|| onednn_error("not available".into()))?;
    if (A::ELEM, B::ELEM, C::ELEM) != (g.a, g.b, g.c) || g.bias != bias.map(|_| B::ELEM) {
        return Err(onednn_error("operand types differ from the plan".into()));
    }
    if bias.is_some_and(|bias| bias.len() < g.n) {
        return Err(onednn_error(format!(
            "a bias of {} for {} columns",
            bias.map_or(0, <[B]>::len),
            g.n
        )));
    }
    let [ea, eb, ec] = g.extents();
    if a.len() < ea || b.len() < eb || c_len < ec {
        return Err(onednn_error(format!(
            "operands hold {}/{}/{c_len} elements, the layout needs {ea}/{eb}/{ec}",
            a.len(),
            b.len(),
        )));
    }
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let p = primitive(api, g)?;
    thread_local! {
        static STREAM: std::cell::Cell<Handle> = const { std::cell::Cell::new(std::ptr::null_mut()) };
        static SCRATCH: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u8; 64]);
    // This thread's scratchpad, taken out for the call (a re-entrant call would get a new one).
    let mut scratch = SCRATCH.with(|s| s.take());
    if scratch.len() * 64 < p.scratch_bytes {
        scratch = vec![Line([0; 64]); p.scratch_bytes.div_ceil(64)];
    }
    // SAFETY: the operands outlive the call and cover every element the layout touches (checked
    // above, and the caller's contract for `c`); the memory objects only borrow them and are
    // destroyed before returning.
    unsafe {
        let stream = STREAM.with(|s| {
            if s.get().is_null() {
                let mut h: Handle = std::ptr::null_mut();
                check(
                    (api.stream_create)(&mut h, api.engine, DNNL_STREAM_DEFAULT),
                    "dnnl_stream_create",
                )?;
                s.set(h);
            }
            Ok::<_, String>(s.get())
        });
        let stream = stream.map_err(onednn_error)?;
        if let Some(set) = api.set_threads {
            set(threads.max(1) as c_int);
        }
        let mut ptrs = vec![
            a.as_ptr() as *mut c_void,
            b.as_ptr() as *mut c_void,
            c as *mut c_void,
        ];
        if let Some(bias) = bias {
            ptrs.push(bias.as_ptr() as *mut c_void);
        }
        // A, B, C, bias, scratchpad.
        let mut mems: [Handle; 5] = [std::ptr::null_mut(); 5];
        let mut result = Ok(());
        for i in 0..ptrs.len() {
            if let Err(e) = check(
                (api.memory_create)(&mut mems[i], &*p.descs[i], api.engine, ptrs[i]),
                "dnnl_memory_create",
            ) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && p.scratch_bytes > 0 {
            result = check(
                (api.memory_create)(
                    &mut mems[4],
                    p.scratch_md,
                    api.engine,
                    scratch.as_mut_ptr() as *mut c_void,
                ),
                "dnnl_memory_create (scratchpad)",
            );
        }
        if result.is_ok() {
            let args: Vec<ExecArg> = [ARG_SRC, ARG_WEIGHTS, ARG_DST, ARG_BIAS, ARG_SCRATCHPAD]
                .into_iter()
                .zip(mems)
                .filter(|(_, m)| !m.is_null())
                .map(|(arg, memory)| ExecArg { arg, memory })
                .collect();
            result = check(
                (api.execute)(p.primitive, stream, args.len() as c_int, args.as_ptr()),
                "dnnl_primitive_execute",
            )
            .and_then(|_| check((api.stream_wait)(stream), "dnnl_stream_wait"));
        }
        for m in mems.into_iter().filter(|m| !m.is_null()) {
            (api.memory_destroy)(m);
        }
        SCRATCH.with(|s| s.replace(scratch));
        result.map_err(onednn_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(g: &Gemm, a: &[bf16], b: &[bf16]) -> Vec<f32> {
        let mut c = vec![0f32; g.m * g.c_row_stride];
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0f32;
                for l in 0..g.k {
                    s += a[i * g.a_strides[0] + l * g.a_strides[1]].to_f32()
                        * b[l * g.b_strides[0] + j * g.b_strides[1]].to_f32();
                }
                c[i * g.c_row_stride + j] = s;
            }
        }
        c
    }

    fn values(n: usize, seed: u32) -> Vec<bf16> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 20;
                bf16::from_f32(x as f32 / 2048.0 - 1.0)
            })
            .collect()
    }

    /// Both layouts callers use (a transposed weight and a plain matrix), odd sizes, a padded
    /// output row, bf16 and f32 outputs — against a plain triple loop.
    #[test]
    fn matches_naive_product_when_available() -> Result<()> {
        if !available() {
            assert!(
                std::env::var_os("GLIMPSE_REQUIRE_ONEDNN").is_none(),
                "GLIMPSE_REQUIRE_ONEDNN is set but {}",
                describe()
            );
            eprintln!("skipped: {}", describe());
            return Ok(());
        }
        for (m, n, k) in [(1, 7, 5), (37, 70, 33), (130, 9, 96)] {
            for transposed in [true, false] {
                let g = Gemm {
                    b_strides: if transposed { [1, k] } else { [n, 1] },
                    c_row_stride: n + 3,
                    ..Gemm::linear(m, n, k, Elem::Bf16, Elem::Bf16, Elem::F32)
                };
                let a = values(m * k, 1);
                let b = values(k * n, 2);
                let want = naive(&g, &a, &b);
                let mut got = vec![0f32; m * (n + 3)];
                gemm(&g, &a, &b, &mut got, 2)?;
                for (x, y) in got.iter().zip(&want) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
                }
                let g16 = Gemm { c: Elem::Bf16, ..g };
                let mut got16 = vec![bf16::ZERO; m * (n + 3)];
                gemm(&g16, &a, &b, &mut got16, 1)?;
                for (x, y) in got16.iter().zip(&want) {
                    assert!((x.to_f32() - y).abs() <= 8e-3 * (1.0 + y.abs()));
                }
            }
        }
        // Concurrent calls from several threads (as rayon tasks and parallel tests make them)
        // each get a private scratchpad: with the library's shared one this raced and crashed.
        let g = Gemm {
            b_strides: [64, 1],
            ..Gemm::linear(128, 64, 2304, Elem::Bf16, Elem::Bf16, Elem::F32)
        };
        let (a, b) = (values(128 * 2304, 5), values(2304 * 64, 6));
        let mut want = vec![0f32; 128 * 64];
        gemm(&g, &a, &b, &mut want, 1)?;
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let mut got = vec![0f32; 128 * 64];
                        gemm(&g, &a, &b, &mut got, 1).unwrap();
                        assert_eq!(got, want);
                    }
                });
            }
        });
        // A layout the slices cannot hold is an error, not a read past the end.
        let g = Gemm::linear(4, 4, 4, Elem::Bf16, Elem::Bf16, Elem::F32);
        let mut c = vec![0f32; 16];
        assert!(gemm(&g, &values(15, 0), &values(16, 0), &mut c, 1).is_err());
        Ok(())
    }
}

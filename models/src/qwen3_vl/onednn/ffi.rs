//! The oneDNN 2.x C API as Glimpse uses it: the handful of entry points a matmul needs, looked up
//! at run time, and the opaque descriptors they fill.

use std::ffi::{c_char, c_int, c_void, CStr};

use super::{Elem, Gemm};

pub(super) type Status = c_int;
pub(super) type Handle = *mut c_void;
pub(super) type Dims = [i64; 12];

/// `dnnl_memory_desc_t` / `dnnl_matmul_desc_t` are plain C structs in oneDNN 2.x (696 and 2800
/// bytes in 2.6). They are only ever filled and read by the library, so generously sized,
/// aligned byte buffers stand in for them.
#[repr(C, align(64))]
pub(super) struct Opaque<const N: usize>([u8; N]);

impl<const N: usize> Opaque<N> {
    pub(super) fn boxed() -> Box<Self> {
        Box::new(Self([0; N]))
    }
}
pub(super) type MemoryDesc = Opaque<2048>;
pub(super) type MatmulDesc = Opaque<8192>;

#[repr(C)]
pub(super) struct ExecArg {
    pub(super) arg: c_int,
    pub(super) memory: Handle,
}

#[repr(C)]
pub(super) struct Version {
    pub(super) major: c_int,
    pub(super) minor: c_int,
    pub(super) patch: c_int,
    pub(super) hash: *const c_char,
    pub(super) cpu_runtime: u32,
    pub(super) gpu_runtime: u32,
}

pub(super) const DNNL_SUCCESS: Status = 0;
pub(super) const DNNL_CPU: c_int = 1;
pub(super) const DNNL_STREAM_DEFAULT: u32 = 1;
pub(super) const ARG_SRC: c_int = 1;
pub(super) const ARG_DST: c_int = 17;
pub(super) const ARG_WEIGHTS: c_int = 33;
pub(super) const ARG_BIAS: c_int = 41;
pub(super) const ARG_SCRATCHPAD: c_int = 80;
pub(super) const QUERY_IMPL_INFO_STR: c_int = 8;
pub(super) const QUERY_SCRATCHPAD_MD: c_int = 136;
pub(super) const SCRATCHPAD_MODE_USER: c_int = 1;

pub(super) type FnVersion = unsafe extern "C" fn() -> *const Version;
pub(super) type FnEngineCreate = unsafe extern "C" fn(*mut Handle, c_int, usize) -> Status;
pub(super) type FnStreamCreate = unsafe extern "C" fn(*mut Handle, Handle, u32) -> Status;
pub(super) type FnMdByStrides =
    unsafe extern "C" fn(*mut MemoryDesc, c_int, *const i64, c_int, *const i64) -> Status;
pub(super) type FnMatmulDescInit = unsafe extern "C" fn(
    *mut MatmulDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
) -> Status;
pub(super) type FnPdCreate =
    unsafe extern "C" fn(*mut Handle, *const MatmulDesc, Handle, Handle, Handle) -> Status;
pub(super) type FnPdQuery = unsafe extern "C" fn(Handle, c_int, c_int, *mut c_void) -> Status;
pub(super) type FnDestroy = unsafe extern "C" fn(Handle) -> Status;
pub(super) type FnPrimitiveCreate = unsafe extern "C" fn(*mut Handle, Handle) -> Status;
pub(super) type FnMemoryCreate =
    unsafe extern "C" fn(*mut Handle, *const MemoryDesc, Handle, *mut c_void) -> Status;
pub(super) type FnExecute = unsafe extern "C" fn(Handle, Handle, c_int, *const ExecArg) -> Status;
pub(super) type FnSetThreads = unsafe extern "C" fn(c_int);
pub(super) type FnAttrCreate = unsafe extern "C" fn(*mut Handle) -> Status;
pub(super) type FnAttrSetScratchpad = unsafe extern "C" fn(Handle, c_int) -> Status;
pub(super) type FnQueryMd = unsafe extern "C" fn(Handle, c_int, c_int) -> *const MemoryDesc;
pub(super) type FnMdSize = unsafe extern "C" fn(*const MemoryDesc) -> usize;

pub(super) struct Api {
    pub(super) md_by_strides: FnMdByStrides,
    pub(super) matmul_desc_init: FnMatmulDescInit,
    pub(super) pd_create: FnPdCreate,
    pub(super) pd_query: FnPdQuery,
    pub(super) pd_destroy: FnDestroy,
    pub(super) primitive_create: FnPrimitiveCreate,
    pub(super) primitive_destroy: FnDestroy,
    pub(super) memory_create: FnMemoryCreate,
    pub(super) memory_destroy: FnDestroy,
    pub(super) stream_create: FnStreamCreate,
    pub(super) stream_wait: FnDestroy,
    pub(super) execute: FnExecute,
    pub(super) attr_create: FnAttrCreate,
    pub(super) attr_destroy: FnDestroy,
    pub(super) attr_set_scratchpad: FnAttrSetScratchpad,
    pub(super) query_md: FnQueryMd,
    pub(super) md_size: FnMdSize,
    /// libgomp's `omp_set_num_threads` when oneDNN was built on OpenMP (Debian's is): the
    /// thread count is a per-calling-thread setting there, so it is set before every call.
    pub(super) set_threads: Option<FnSetThreads>,
    pub(super) engine: Handle,
    /// What the library was, for `glimpse bench` and errors.
    pub(super) description: String,
    pub(super) _lib: libloading::Library,
    pub(super) _gomp: Option<libloading::Library>,
}

// SAFETY: the engine handle is immutable after creation and oneDNN engines may be shared
// between threads; every other field is a function pointer or a library handle.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

pub(super) fn load() -> std::result::Result<Api, String> {
    let setting = std::env::var("GLIMPSE_ONEDNN").unwrap_or_default();
    if matches!(setting.as_str(), "0" | "off" | "false" | "no") {
        return Err("turned off by GLIMPSE_ONEDNN".into());
    }
    let names: Vec<String> = if setting.is_empty() || setting == "on" || setting == "1" {
        ["libdnnl.so.2", "libdnnl.2.dylib", "dnnl.dll"]
            .map(String::from)
            .to_vec()
    } else {
        vec![setting]
    };
    let mut last = String::new();
    let lib = names
        .iter()
        // SAFETY: loading oneDNN runs only its static initialisers.
        .find_map(|n| match unsafe { libloading::Library::new(n) } {
            Ok(l) => Some(l),
            Err(e) => {
                last = e.to_string();
                None
            }
        })
        .ok_or(last)?;
    // SAFETY: each symbol is looked up by its oneDNN 2.x C name and given that signature.
    unsafe {
        macro_rules! sym {
            ($name:literal) => {
                *lib.get(concat!($name, "\0").as_bytes())
                    .map_err(|e| format!("{}: {e}", $name))?
            };
        }
        let version: FnVersion = sym!("dnnl_version");
        let v = &*version();
        if v.major != 2 {
            return Err(format!(
                "oneDNN {}.{} found; the 2.x C API is the one supported",
                v.major, v.minor
            ));
        }
        let engine_create: FnEngineCreate = sym!("dnnl_engine_create");
        let mut engine: Handle = std::ptr::null_mut();
        check(
            engine_create(&mut engine, DNNL_CPU, 0),
            "dnnl_engine_create",
        )?;
        let gomp = libloading::Library::new("libgomp.so.1").ok();
        let set_threads = gomp
            .as_ref()
            .and_then(|g| g.get::<FnSetThreads>(b"omp_set_num_threads\0").ok())
            .map(|f| *f);
        let mut api = Api {
            md_by_strides: sym!("dnnl_memory_desc_init_by_strides"),
            matmul_desc_init: sym!("dnnl_matmul_desc_init"),
            pd_create: sym!("dnnl_primitive_desc_create"),
            pd_query: sym!("dnnl_primitive_desc_query"),
            pd_destroy: sym!("dnnl_primitive_desc_destroy"),
            primitive_create: sym!("dnnl_primitive_create"),
            primitive_destroy: sym!("dnnl_primitive_destroy"),
            memory_create: sym!("dnnl_memory_create"),
            memory_destroy: sym!("dnnl_memory_destroy"),
            stream_create: sym!("dnnl_stream_create"),
            stream_wait: sym!("dnnl_stream_wait"),
            execute: sym!("dnnl_primitive_execute"),
            attr_create: sym!("dnnl_primitive_attr_create"),
            attr_destroy: sym!("dnnl_primitive_attr_destroy"),
            attr_set_scratchpad: sym!("dnnl_primitive_attr_set_scratchpad_mode"),
            query_md: sym!("dnnl_primitive_desc_query_md"),
            md_size: sym!("dnnl_memory_desc_get_size"),
            set_threads,
            engine,
            description: String::new(),
            _lib: lib,
            _gomp: gomp,
        };
        // Only a native bf16 kernel is worth it: where oneDNN would emulate bf16 with f32
        // instructions, cpu_mm's own f32 path is as fast and keeps one code path.
        let probe = Gemm::linear(64, 64, 64, Elem::Bf16, Elem::Bf16, Elem::F32);
        let (pd, _) = create_pd(&api, &probe)?;
        let mut info: *const c_char = std::ptr::null();
        let queried = (api.pd_query)(pd, QUERY_IMPL_INFO_STR, 0, &mut info as *mut _ as _);
        let kernel = if queried == DNNL_SUCCESS && !info.is_null() {
            CStr::from_ptr(info).to_string_lossy().into_owned()
        } else {
            String::new()
        };
        (api.pd_destroy)(pd);
        if !(kernel.contains("bf16") || kernel.contains("amx")) {
            return Err(format!(
                "oneDNN chose `{kernel}` for bf16: no native bf16 kernel"
            ));
        }
        api.description = format!("oneDNN {}.{}.{} ({kernel})", v.major, v.minor, v.patch);
        Ok(api)
    }
}

pub(super) fn check(status: Status, what: &str) -> std::result::Result<(), String> {
    if status == DNNL_SUCCESS {
        Ok(())
    } else {
        Err(format!("{what} failed with oneDNN status {status}"))
    }
}

/// Fills the memory descriptors of `g` (A, B, C, and the bias row when it has one) and creates
/// its primitive descriptor.
///
/// SAFETY: `api` holds valid oneDNN 2.x entry points.
pub(super) unsafe fn create_pd(
    api: &Api,
    g: &Gemm,
) -> std::result::Result<(Handle, [Box<MemoryDesc>; 4]), String> {
    let dims = |a: usize, b: usize| -> Dims {
        let mut d = [0i64; 12];
        d[0] = a as i64;
        d[1] = b as i64;
        d
    };
    let descs = [
        MemoryDesc::boxed(),
        MemoryDesc::boxed(),
        MemoryDesc::boxed(),
        MemoryDesc::boxed(),
    ];
    let mut layouts = vec![
        (dims(g.m, g.k), dims(g.a_strides[0], g.a_strides[1]), g.a),
        (dims(g.k, g.n), dims(g.b_strides[0], g.b_strides[1]), g.b),
        (dims(g.m, g.n), dims(g.c_row_stride, 1), g.c),
    ];
    if let Some(e) = g.bias {
        // One row, broadcast over C's rows.
        layouts.push((dims(1, g.n), dims(g.n, 1), e));
    }
    for (desc, (d, s, e)) in descs.iter().zip(layouts) {
        let desc = &**desc as *const MemoryDesc as *mut MemoryDesc;
        check(
            (api.md_by_strides)(desc, 2, d.as_ptr(), e.code(), s.as_ptr()),
            "dnnl_memory_desc_init_by_strides",
        )?;
    }
    let op = MatmulDesc::boxed();
    check(
        (api.matmul_desc_init)(
            &*op as *const MatmulDesc as *mut MatmulDesc,
            &*descs[0],
            &*descs[1],
            match g.bias {
                Some(_) => &*descs[3],
                None => std::ptr::null(),
            },
            &*descs[2],
        ),
        "dnnl_matmul_desc_init",
    )?;
    let mut attr: Handle = std::ptr::null_mut();
    check((api.attr_create)(&mut attr), "dnnl_primitive_attr_create")?;
    let mut pd: Handle = std::ptr::null_mut();
    let created = check(
        (api.attr_set_scratchpad)(attr, SCRATCHPAD_MODE_USER),
        "dnnl_primitive_attr_set_scratchpad_mode",
    )
    .and_then(|_| {
        check(
            (api.pd_create)(&mut pd, &*op, attr, api.engine, std::ptr::null_mut()),
            "dnnl_primitive_desc_create (matmul)",
        )
    });
    (api.attr_destroy)(attr);
    created?;
    Ok((pd, descs))
}

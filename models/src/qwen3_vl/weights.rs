//! Opening a checkpoint's safetensors (spec §2): one `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`, exposed as a `candle_nn::VarBuilder`.
//!
//! The safetensors headers are parsed and checked here, at open time, rather than by candle's
//! loader: the header gives every tensor's dtype, shape and byte range, so a truncated or
//! inconsistent file is reported with the tensor and the file it concerns before any model code
//! runs. Errors that surface later through the `VarBuilder` (a tensor the model asks for is
//! missing, or has another shape) are carried inside the candle error and turned back into
//! [`Error::MissingTensor`] / [`Error::BadTensor`] by `From<candle_core::Error> for Error`.
//!
//! Tensors are read with positioned reads straight into the buffer the model keeps, not copied
//! out of a memory map: a map's pages stay resident (and count in the process's memory) until
//! the whole map is dropped, so copying out of one needed the checkpoint's size twice at the
//! peak. A tensor converted to another dtype is read and converted a bounded chunk at a time,
//! so the only full-size buffer is the converted one.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor, WithDType};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::{Error, Result};

/// A safetensors header larger than this is not a header (the safetensors crate uses the same
/// bound); refusing it early avoids allocating whatever a corrupt length prefix claims.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Bytes read (and converted) at a time when a tensor changes dtype on load: large enough that
/// the per-chunk overhead vanishes, small enough not to matter next to the weights.
const CONVERT_CHUNK_BYTES: usize = 1 << 20;

/// One open weight file.
struct WeightFile {
    /// File name as shown in errors (relative to the checkpoint directory).
    name: String,
    file: File,
}

/// Where one tensor lives.
#[derive(Debug, Clone)]
struct TensorEntry {
    file: usize,
    dtype: std::result::Result<DType, String>,
    shape: Vec<usize>,
    /// Absolute byte range inside the file (header already skipped).
    start: usize,
    end: usize,
}

/// An opened checkpoint: every tensor's location, checked against the bytes on disk.
pub struct Checkpoint {
    dir: PathBuf,
    files: Vec<WeightFile>,
    tensors: HashMap<String, TensorEntry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field(
                "files",
                &self.files.iter().map(|w| &w.name).collect::<Vec<_>>(),
            )
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

impl Checkpoint {
    /// Opens the weights of the checkpoint in `dir`: `model.safetensors.index.json` (sharded) if
    /// present, else `model.safetensors`. Every header is validated; a tensor whose bytes run
    /// past the end of its file is a [`Error::BadTensor`] naming both.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let single_path = dir.join("model.safetensors");
        if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| Error::Io {
                context: format!("reading {}", index_path.display()),
                source: e,
            })?;
            let index: ShardIndex = serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: index_path.clone(),
                reason: format!("not a safetensors index ({e})"),
            })?;
            let mut shard_names: Vec<&String> = index.weight_map.values().collect();
            shard_names.sort();
            shard_names.dedup();
            let ckpt = Self::from_files(dir, &shard_names)?;
            // The index is a promise about where each tensor is; hold it to that promise so a
            // mismatched index is reported against the shard it names.
            for (tensor, shard) in &index.weight_map {
                let in_named_shard = ckpt
                    .tensors
                    .get(tensor)
                    .is_some_and(|t| &ckpt.files[t.file].name == shard);
                if !in_named_shard {
                    return Err(Error::MissingTensor {
                        name: tensor.clone(),
                        file: format!("{shard} (as listed in model.safetensors.index.json)"),
                    });
                }
            }
            Ok(ckpt)
        } else if single_path.is_file() {
            Self::from_files(dir, &["model.safetensors"])
        } else {
            Err(Error::MissingFile {
                path: single_path,
                reason: "no model.safetensors and no model.safetensors.index.json in the \
                         checkpoint directory"
                    .into(),
            })
        }
    }

    fn from_files<S: AsRef<str>>(dir: &Path, names: &[S]) -> Result<Self> {
        let mut files = Vec::with_capacity(names.len());
        let mut tensors = HashMap::new();
        for (file_idx, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let path = dir.join(name);
            let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::MissingFile {
                    path: path.clone(),
                    reason: "a weight file listed for this checkpoint is not there".into(),
                },
                _ => Error::Io {
                    context: format!("opening {}", path.display()),
                    source: e,
                },
            })?;
            let file_len = file
                .metadata()
                .map_err(|e| Error::Io {
                    context: format!("reading the size of {}", path.display()),
                    source: e,
                })?
                .len();
            for (tname, entry) in read_header(&file, file_len, name, &path)? {
                tensors.insert(
                    tname,
                    TensorEntry {
                        file: file_idx,
                        ..entry
                    },
                );
            }
            files.push(WeightFile {
                name: name.to_string(),
                file,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            tensors,
        })
    }

    /// The directory the checkpoint was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the checkpoint has a tensor of this (full) name, or `name` is a row range of one
    /// (see [`rows_name`]).
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// The stored shape of a tensor, read from its header (no data is touched).
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entry(name).map(|t| t.shape)
    }

    /// The file a tensor lives in, as shown in errors.
    pub fn file_of(&self, name: &str) -> Option<&str> {
        self.entry(name).map(|t| self.files[t.file].name.as_str())
    }

    /// Where `name`'s bytes are: a stored tensor, or rows `a..b` of one (`x[a..b]`, see
    /// [`rows_name`]; the first axis cut to those rows, which are contiguous in the file).
    fn entry(&self, name: &str) -> Option<TensorEntry> {
        if let Some(t) = self.tensors.get(name) {
            return Some(t.clone());
        }
        let (parent, range) = name.strip_suffix(']')?.rsplit_once('[')?;
        let (a, b) = range.split_once("..")?;
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        let whole = self.tensors.get(parent)?;
        let (&first, rest) = whole.shape.split_first()?;
        if a >= b || b > first {
            return None;
        }
        let row_bytes = rest.iter().product::<usize>() * whole.dtype.as_ref().ok()?.size_in_bytes();
        let mut shape = whole.shape.clone();
        shape[0] = b - a;
        Some(TensorEntry {
            file: whole.file,
            dtype: whole.dtype.clone(),
            shape,
            start: whole.start + a * row_bytes,
            end: whole.start + b * row_bytes,
        })
    }

    /// Every tensor name (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    fn where_missing(&self) -> String {
        match self.files.as_slice() {
            [one] => one.name.clone(),
            many => format!(
                "{} ({} files)",
                many.iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                many.len()
            ),
        }
    }

    /// Loads a tensor in its stored shape, converted to `dtype`, on `device`.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let entry = &self.entry(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            file: self.where_missing(),
        })?;
        let file = &self.files[entry.file];
        let bad = |reason: String| Error::BadTensor {
            name: name.to_string(),
            file: file.name.clone(),
            reason,
        };
        let stored = entry.dtype.clone().map_err(bad)?;
        let t = read_tensor(&file.file, entry, stored, dtype).map_err(|e| match e {
            ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => bad(format!(
                "file is truncated: it ended before the tensor's bytes {}..{} (changed on disk \
                 since it was opened?)",
                entry.start, entry.end
            )),
            ReadError::Io(e) => Error::Io {
                context: format!("reading tensor {name} from {}", file.name),
                source: e,
            },
            ReadError::Candle(e) => bad(format!("cannot decode ({e})")),
        })?;
        // Converted on the CPU first, so a device copy is made once, at the target dtype.
        Ok(t.to_device(device)?)
    }

    /// Loads a tensor and checks its shape against what the model expects.
    pub fn load_shaped(
        &self,
        name: &str,
        shape: &Shape,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if let Some(entry) = self.entry(name) {
            if entry.shape.as_slice() != shape.dims() {
                return Err(Error::BadTensor {
                    name: name.to_string(),
                    file: self.files[entry.file].name.clone(),
                    reason: format!(
                        "has shape {:?}, the model config expects {:?}",
                        entry.shape,
                        shape.dims()
                    ),
                });
            }
        }
        self.load(name, dtype, device)
    }

    /// A `VarBuilder` over this checkpoint that loads tensors as `dtype` on `device`.
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.clone())), dtype, device.clone())
    }
}

/// The name under which a [`Checkpoint`]'s `VarBuilder` serves rows `start..end` (along the
/// first axis) of the stored tensor `name`, read from the file alone. Loaders that quantize
/// read large weights and the fused MoE experts a part at a time this way, so no whole
/// full-precision copy of them is ever held. Other `VarBuilder`s do not have such names.
pub fn rows_name(name: &str, start: usize, end: usize) -> String {
    format!("{name}[{start}..{end}]")
}

/// Whether `vb` serves row ranges of `name` (a [`Checkpoint`]'s does) and the stored tensor has
/// exactly `rows` rows along its first axis.
pub fn serves_rows(vb: &VarBuilder, name: &str, rows: usize) -> bool {
    rows > 0
        && vb.contains_tensor(&rows_name(name, rows - 1, rows))
        && !vb.contains_tensor(&rows_name(name, rows, rows + 1))
}

/// Opens `dir`'s weights and returns a `VarBuilder` loading them as `dtype` on `device`.
pub fn open_var_builder(dir: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    Ok(Arc::new(Checkpoint::open(dir)?).var_builder(dtype, device))
}

/// Reads, parses and checks one file's header (`file_len` bytes long). Entries come back with
/// `file: 0`.
fn read_header(
    file: &File,
    file_len: u64,
    name: &str,
    path: &Path,
) -> Result<Vec<(String, TensorEntry)>> {
    let bad_file = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let io = |e: std::io::Error| Error::Io {
        context: format!("reading the header of {}", path.display()),
        source: e,
    };
    if file_len < 8 {
        return Err(bad_file(format!(
            "{file_len} bytes is too short for a safetensors file (truncated?)"
        )));
    }
    let mut prefix = [0u8; 8];
    read_exact_at(file, &mut prefix, 0).map_err(io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
        return Err(bad_file(format!(
            "header claims {header_len} bytes but the file has {file_len} (truncated or not \
             a safetensors file)"
        )));
    }
    let data_start = 8 + header_len as usize;
    let mut header_bytes = vec![0u8; header_len as usize];
    read_exact_at(file, &mut header_bytes, 8).map_err(io)?;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| bad_file(format!("safetensors header is not valid JSON ({e})")))?;
    let mut out = Vec::with_capacity(header.len());
    for (tname, value) in header {
        if tname == "__metadata__" {
            continue;
        }
        let bad = |reason: String| Error::BadTensor {
            name: tname.clone(),
            file: name.to_string(),
            reason,
        };
        let h: HeaderEntry = serde_json::from_value(value)
            .map_err(|e| bad(format!("header entry is malformed ({e})")))?;
        let dtype = parse_dtype(&h.dtype);
        let [begin, end] = h.data_offsets;
        let numel = h
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {:?} overflows", h.shape)))?;
        if begin > end {
            return Err(bad(format!("data offsets [{begin}, {end}] are reversed")));
        }
        if let Ok(dt) = dtype {
            let want = numel.checked_mul(dt.size_in_bytes());
            if want != Some(end - begin) {
                return Err(bad(format!(
                    "shape {:?} of {} needs {} bytes but its data offsets span {}",
                    h.shape,
                    h.dtype,
                    numel.saturating_mul(dt.size_in_bytes()),
                    end - begin
                )));
            }
        }
        let abs_end = data_start.checked_add(end);
        if abs_end.is_none_or(|e| e as u64 > file_len) {
            return Err(bad(format!(
                "file is truncated: the tensor's data ends at byte {} but the file has only {} \
                 bytes",
                data_start as u128 + end as u128,
                file_len
            )));
        }
        out.push((
            tname,
            TensorEntry {
                file: 0,
                dtype,
                shape: h.shape,
                start: data_start + begin,
                end: data_start + end,
            },
        ));
    }
    Ok(out)
}

/// Why reading a tensor failed: the file, or candle turning its bytes into a tensor.
enum ReadError {
    Io(std::io::Error),
    Candle(candle_core::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<candle_core::Error> for ReadError {
    fn from(e: candle_core::Error) -> Self {
        Self::Candle(e)
    }
}

/// Reads `entry`'s bytes (stored as `stored`) into a CPU tensor of `dtype`.
fn read_tensor(
    file: &File,
    entry: &TensorEntry,
    stored: DType,
    dtype: DType,
) -> std::result::Result<Tensor, ReadError> {
    macro_rules! as_type {
        ($t:ty) => {
            read_as::<$t>(file, entry, stored)
        };
    }
    match dtype {
        DType::F32 => as_type!(f32),
        DType::BF16 => as_type!(half::bf16),
        DType::F16 => as_type!(half::f16),
        DType::F64 => as_type!(f64),
        DType::I64 => as_type!(i64),
        DType::I32 => as_type!(i32),
        DType::I16 => as_type!(i16),
        DType::U32 => as_type!(u32),
        DType::U8 => as_type!(u8),
        other => Err(ReadError::Candle(candle_core::Error::Msg(format!(
            "loading as {other:?} is not supported"
        )))),
    }
}

/// Reads a tensor into one buffer of `T` that becomes the tensor's storage. Same dtype: the
/// file's bytes land in it directly. Another dtype: each chunk is decoded and converted by
/// candle (so the rounding is exactly `Tensor::to_dtype`'s) and copied into place.
fn read_as<T: WithDType>(
    file: &File,
    entry: &TensorEntry,
    stored: DType,
) -> std::result::Result<Tensor, ReadError> {
    let numel: usize = entry.shape.iter().product();
    let mut out = zeroed::<T>(numel);
    if stored == T::DTYPE {
        read_exact_at(file, as_bytes_mut(&mut out), entry.start as u64)?;
    } else {
        let elem = stored.size_in_bytes();
        let per_chunk = (CONVERT_CHUNK_BYTES / elem).max(1);
        let mut raw = vec![0u8; per_chunk.min(numel) * elem];
        let mut done = 0;
        while done < numel {
            let n = per_chunk.min(numel - done);
            let bytes = &mut raw[..n * elem];
            read_exact_at(file, bytes, (entry.start + done * elem) as u64)?;
            let chunk = Tensor::from_raw_buffer(bytes, stored, &[n], &Device::Cpu)?
                .to_dtype(T::DTYPE)?
                .to_vec1::<T>()?;
            out[done..done + n].copy_from_slice(&chunk);
            done += n;
        }
    }
    Ok(Tensor::from_vec(out, entry.shape.as_slice(), &Device::Cpu)?)
}

/// `n` zeros of `T` from the allocator's zeroed memory: for a weight-sized buffer that is fresh
/// pages the kernel zeroes as they are first written, where `vec![zero; n]` for a type the
/// standard library does not know to be zero (bf16, f16) writes every byte once more before the
/// read overwrites it.
fn zeroed<T: WithDType>(n: usize) -> Vec<T> {
    let layout = match std::alloc::Layout::array::<T>(n) {
        Ok(l) if l.size() > 0 => l,
        _ => return vec![T::from_f64(0.0); n],
    };
    // SAFETY: every WithDType is a plain number whose all-zero bytes are its zero; the block
    // is allocated by the global allocator with exactly the layout `Vec<T>` of capacity n uses.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

/// The bytes of a buffer of plain numbers (every `WithDType` is one: no padding, any bit
/// pattern valid), to read a file straight into it.
fn as_bytes_mut<T: WithDType>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: T is a plain-old-data number type (u8..f64, f16, bf16): every byte pattern is a
    // valid value and there is no padding; the slice covers exactly v's memory.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Fills `buf` from `offset` without moving a shared cursor (tensors may be read from several
/// threads); a file shorter than asked is `UnexpectedEof`.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn parse_dtype(s: &str) -> std::result::Result<DType, String> {
    Ok(match s {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "U32" => DType::U32,
        "U8" => DType::U8,
        other => return Err(format!("dtype {other} is not supported")),
    })
}

/// Our error, carried through candle's error type so that `VarBuilder` callers get it back
/// intact (see `From<candle_core::Error> for Error`).
pub(crate) fn to_candle(e: Error) -> candle_core::Error {
    candle_core::Error::WrappedContext {
        wrapped: Box::new(e),
        context: String::new(),
    }
}

struct Backend(Arc<Checkpoint>);

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.load_shaped(name, &s, dtype, dev).map_err(to_candle)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.load(name, dtype, dev).map_err(to_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a safetensors file by hand, so the tests control every byte.
    fn write_st(path: &Path, tensors: &[(&str, &[usize], &[f32])]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, shape, values) in tensors {
            let begin = data.len();
            for v in values.iter() {
                data.extend_from_slice(&v.to_le_bytes());
            }
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
            );
        }
        let mut h = serde_json::to_vec(&header).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(&data);
        std::fs::write(path, bytes).unwrap();
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("glimpse-weights-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn loads_single_and_converts_dtype() {
        let d = tmpdir("single");
        write_st(
            &d.join("model.safetensors"),
            &[("a.weight", &[2, 2], &[1.0, 2.0, 3.0, 4.5])],
        );
        let vb = open_var_builder(&d, DType::BF16, &Device::Cpu).unwrap();
        let t = vb.get((2, 2), "a.weight").unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let v: Vec<f32> = t
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.5]);
        assert!(vb.contains_tensor("a.weight"));
        assert!(!vb.contains_tensor("b.weight"));
    }

    #[test]
    fn sharded_routes_by_index() {
        let d = tmpdir("sharded");
        write_st(&d.join("s1.safetensors"), &[("x", &[1], &[1.0])]);
        write_st(&d.join("s2.safetensors"), &[("y", &[2], &[2.0, 3.0])]);
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"metadata": {}, "weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}}"#,
        )
        .unwrap();
        let ck = Arc::new(Checkpoint::open(&d).unwrap());
        assert_eq!(ck.file_of("y"), Some("s2.safetensors"));
        let vb = ck.var_builder(DType::F32, &Device::Cpu);
        let y: Vec<f32> = vb.get(2, "y").unwrap().to_vec1().unwrap();
        assert_eq!(y, vec![2.0, 3.0]);

        // An index that points at the wrong shard names the tensor and the shard.
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map": {"x": "s2.safetensors", "y": "s2.safetensors"}}"#,
        )
        .unwrap();
        let err = Checkpoint::open(&d).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { name, file } if name == "x" && file.contains("s2.safetensors")),
            "{err}"
        );
    }

    #[test]
    fn missing_tensor_names_tensor_and_file() {
        let d = tmpdir("missing");
        write_st(&d.join("model.safetensors"), &[("a", &[1], &[1.0])]);
        let vb = open_var_builder(&d, DType::F32, &Device::Cpu).unwrap();
        let err: Error = vb.pp("layer").get(1, "b").unwrap_err().into();
        match &err {
            Error::MissingTensor { name, file } => {
                assert_eq!(name, "layer.b");
                assert_eq!(file, "model.safetensors");
            }
            other => panic!("wrong error: {other}"),
        }
        assert!(err.to_string().contains("layer.b"), "{err}");
    }

    #[test]
    fn wrong_shape_names_tensor_and_file() {
        let d = tmpdir("shape");
        write_st(&d.join("model.safetensors"), &[("w", &[2, 3], &[0.0; 6])]);
        let vb = open_var_builder(&d, DType::F32, &Device::Cpu).unwrap();
        // Through candle_nn's own constructors, as the model code uses them.
        let err: Error = candle_nn::linear_no_bias(2, 3, vb.pp("proj"))
            .map(|_| ())
            .unwrap_err()
            .into();
        assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "proj.weight"));
        let err: Error = vb.get((3, 2), "w").unwrap_err().into();
        match &err {
            Error::BadTensor { name, file, reason } => {
                assert_eq!(name, "w");
                assert_eq!(file, "model.safetensors");
                assert!(
                    reason.contains("[2, 3]") && reason.contains("[3, 2]"),
                    "{reason}"
                );
            }
            other => panic!("wrong error: {other}"),
        }
    }

    #[test]
    fn truncated_file_names_tensor_and_file() {
        let d = tmpdir("trunc");
        let p = d.join("model.safetensors");
        write_st(&p, &[("a", &[4], &[1.0; 4]), ("b", &[8], &[2.0; 8])]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let err = Checkpoint::open(&d).unwrap_err();
        match &err {
            Error::BadTensor { name, file, reason } => {
                assert_eq!(name, "b");
                assert_eq!(file, "model.safetensors");
                assert!(reason.contains("truncated"), "{reason}");
            }
            other => panic!("wrong error: {other}"),
        }
        // Cut inside the header: the file is named.
        std::fs::write(&p, &bytes[..20]).unwrap();
        let err = Checkpoint::open(&d).unwrap_err();
        assert!(
            matches!(&err, Error::BadFile { path, .. } if path == &p),
            "{err}"
        );
        std::fs::write(&p, &bytes[..3]).unwrap();
        assert!(matches!(
            Checkpoint::open(&d).unwrap_err(),
            Error::BadFile { .. }
        ));
    }

    #[test]
    fn inconsistent_header_is_bad_tensor() {
        let d = tmpdir("inconsistent");
        let header =
            serde_json::json!({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}});
        let h = serde_json::to_vec(&header).unwrap();
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(d.join("model.safetensors"), bytes).unwrap();
        let err = Checkpoint::open(&d).unwrap_err();
        assert!(
            matches!(&err, Error::BadTensor { name, .. } if name == "w"),
            "{err}"
        );
    }

    /// A converted load goes through the file in chunks; the values are exactly candle's
    /// `to_dtype` of the whole tensor, across chunk boundaries, and the unconverted load is
    /// bit-identical to the file.
    #[test]
    fn chunked_conversion_matches_to_dtype() {
        let d = tmpdir("chunked");
        // More elements than one chunk holds (and not a multiple of it).
        let n = CONVERT_CHUNK_BYTES / 4 * 2 + 12345;
        let values: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37).sin() * 1e3 + 1e-3)
            .collect();
        write_st(&d.join("model.safetensors"), &[("w", &[n], &values)]);
        let ck = Checkpoint::open(&d).unwrap();
        let whole = Tensor::from_slice(&values, n, &Device::Cpu).unwrap();
        for dtype in [DType::BF16, DType::F16, DType::F64] {
            let got = ck.load("w", dtype, &Device::Cpu).unwrap();
            let want = whole.to_dtype(dtype).unwrap();
            assert_eq!(got.dtype(), dtype);
            let same: u8 = got
                .eq(&want)
                .unwrap()
                .min_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(same, 1, "{dtype:?} differs from to_dtype");
        }
        let f32s: Vec<f32> = ck
            .load("w", DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(f32s
            .iter()
            .zip(&values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// A file cut short after it was opened (the header was fine then) names the tensor whose
    /// bytes are missing, rather than reading garbage.
    #[test]
    fn file_truncated_after_open_names_tensor() {
        let d = tmpdir("shrunk");
        let p = d.join("model.safetensors");
        write_st(&p, &[("a", &[4], &[1.0; 4]), ("b", &[8], &[2.0; 8])]);
        let ck = Checkpoint::open(&d).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 8)
            .unwrap();
        assert!(ck.load("a", DType::F32, &Device::Cpu).is_ok());
        match ck.load("b", DType::BF16, &Device::Cpu).unwrap_err() {
            Error::BadTensor { name, file, reason } => {
                assert_eq!(name, "b");
                assert_eq!(file, "model.safetensors");
                assert!(reason.contains("truncated"), "{reason}");
            }
            other => panic!("wrong error: {other}"),
        }
    }

    /// `x[a..b]` reads rows a..b of a stored `x`; an empty, reversed or out-of-range range, or
    /// a name that is no tensor, is missing.
    #[test]
    fn row_ranges_read_from_the_file() {
        let d = tmpdir("rows");
        let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
        write_st(
            &d.join("model.safetensors"),
            &[("e.w", &[3, 2, 4], &values)],
        );
        let ck = Arc::new(Checkpoint::open(&d).unwrap());
        assert_eq!(ck.shape(&rows_name("e.w", 1, 3)), Some(vec![2, 2, 4]));
        let s: Vec<f32> = ck
            .load_shaped(
                "e.w[1..2]",
                &Shape::from((1, 2, 4)),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(s, values[8..16].to_vec());
        for missing in [
            "e.w[3..4]",
            "e.w[2..2]",
            "e.w[2..1]",
            "e.x[0..1]",
            "e.w[0..x]",
        ] {
            assert!(!ck.contains(missing), "{missing}");
        }
        assert!(matches!(
            ck.load("e.w[3..4]", DType::F32, &Device::Cpu).unwrap_err(),
            Error::MissingTensor { .. }
        ));
        assert!(matches!(
            ck.load_shaped("e.w[0..1]", &Shape::from((2, 4)), DType::F32, &Device::Cpu)
                .unwrap_err(),
            Error::BadTensor { .. }
        ));
        let vb = ck.var_builder(DType::F32, &Device::Cpu);
        assert!(serves_rows(&vb, "e.w", 3));
        assert!(!serves_rows(&vb, "e.w", 2) && !serves_rows(&vb, "e.w", 4));
        let other = VarBuilder::from_tensors(HashMap::new(), DType::F32, &Device::Cpu);
        assert!(!serves_rows(&other, "e.w", 3));
    }

    #[test]
    fn no_weights_is_missing_file() {
        let d = tmpdir("none");
        assert!(matches!(
            Checkpoint::open(&d).unwrap_err(),
            Error::MissingFile { .. }
        ));
    }
}

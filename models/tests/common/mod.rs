//! Helpers shared by the parity tests: where the fixtures are, reading a reference case, and
//! the error measures the tolerances are stated in.

#![allow(dead_code)] // each test binary uses a subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// `tests/fixtures` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

pub fn model_dir(model: &str) -> PathBuf {
    fixtures_dir().join("models").join(model)
}

/// One reference case: `reference/<model>/<case>.safetensors` and its `.json`.
pub struct Case {
    pub model: String,
    pub name: String,
    pub tensors: HashMap<String, Tensor>,
    pub meta: serde_json::Value,
}

impl Case {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn need(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}/{}: reference has no `{name}`", self.model, self.name))
    }

    /// `input_ids` `[1, L]` I64 as u32 ids.
    pub fn input_ids(&self) -> Vec<u32> {
        to_i64(self.need("input_ids"))
            .into_iter()
            .map(|v| u32::try_from(v).expect("token id fits u32"))
            .collect()
    }

    /// A `[n, 3]` I64 grid tensor as rows; empty when the case has none.
    pub fn grids(&self, name: &str) -> Vec<[usize; 3]> {
        match self.get(name) {
            None => Vec::new(),
            Some(t) => to_i64(t)
                .chunks(3)
                .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
                .collect(),
        }
    }
}

/// The case names of one model, sorted (every `<case>.safetensors` in its reference folder).
pub fn case_names(model: &str) -> Vec<String> {
    let dir = fixtures_dir().join("reference").join(model);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".safetensors"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

pub fn load_case(model: &str, case: &str) -> Case {
    let dir = fixtures_dir().join("reference").join(model);
    let st = dir.join(format!("{case}.safetensors"));
    let tensors = candle_core::safetensors::load(&st, &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading {}: {e}", st.display()));
    let js = dir.join(format!("{case}.json"));
    let meta = std::fs::read_to_string(&js)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    Case {
        model: model.to_string(),
        name: case.to_string(),
        tensors,
        meta,
    }
}

pub fn to_i64(t: &Tensor) -> Vec<i64> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::I64))
        .and_then(|t| t.to_vec1::<i64>())
        .expect("integer tensor")
}

pub fn to_f32(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .expect("float tensor")
}

/// ‖got − want‖₂ / ‖want‖₂ over all elements, in f64. Panics on a shape mismatch, which is
/// itself a failure worth seeing.
pub fn rel_l2(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(
        got.elem_count(),
        want.elem_count(),
        "shape {:?} vs reference {:?}",
        got.shape(),
        want.shape()
    );
    let (g, w) = (to_f32(got), to_f32(want));
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in g.iter().zip(&w) {
        let d = *a as f64 - *b as f64;
        num += d * d;
        den += (*b as f64) * (*b as f64);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

pub fn max_abs(got: &Tensor, want: &Tensor) -> f64 {
    let (g, w) = (to_f32(got), to_f32(want));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max)
}

/// Row-wise argmax of a `[n, V]` tensor.
pub fn argmax_rows(t: &Tensor) -> Vec<usize> {
    let v = t.dim(candle_core::D::Minus1).expect("2-D");
    to_f32(t)
        .chunks(v)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// Worst error seen per stage name, for the report a test prints.
#[derive(Default)]
pub struct ErrorTable {
    worst: std::collections::BTreeMap<String, f64>,
}

impl ErrorTable {
    pub fn note(&mut self, stage: &str, err: f64) {
        let e = self.worst.entry(stage.to_string()).or_insert(0.0);
        *e = e.max(err);
    }

    pub fn print(&self, title: &str) {
        println!("{title}");
        for (stage, err) in &self.worst {
            println!("  {stage:<40} max rel L2 {err:.3e}");
        }
    }
}

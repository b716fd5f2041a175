//! Target sizes (`smart_resize`) and torch's uint8 antialiased bicubic resampling.
//!
//! transformers' default Qwen image/video processors resize with
//! `torchvision.transforms.v2.functional.resize(uint8, BICUBIC, antialias=True)`, which on CPU runs
//! `torch.nn.functional.interpolate(mode="bicubic", antialias=True)` natively on uint8
//! (`aten/src/ATen/native/cpu/UpSampleKernel.cpp`, `UpSampleKernelAVXAntialias.h`). That path uses
//! fixed-point int16 weights and rounds to uint8 between the horizontal and the vertical pass, so a
//! float resize (or PIL's) can be several levels off on noisy images (spec §6.3). This module
//! reproduces it integer for integer.

use crate::{Error, Result};

/// Python's `round()` (half to even), as used by `smart_resize` (spec §10.13).
fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

fn check_aspect(height: f64, width: f64) -> Result<()> {
    let ratio = height.max(width) / height.min(width);
    if ratio > 200.0 {
        return Err(Error::bad_config(
            "image size",
            format!("aspect ratio must be at most 200, got {ratio}"),
        ));
    }
    Ok(())
}

/// `smart_resize` of `image_processing_qwen2_vl.py` (spec §6.2): both sides a multiple of `factor`,
/// the pixel count inside `[min_pixels, max_pixels]`, the aspect ratio kept as well as possible.
/// Returns `(height, width)`.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(Error::bad_config(
            "image size",
            format!("{width}x{height} has no pixels"),
        ));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    check_aspect(h, w)?;
    let mut h_bar = py_round(h / f) * f;
    let mut w_bar = py_round(w / f) * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// The video `smart_resize` of `video_processing_qwen3_vl.py` (spec §7.3): the budget covers all
/// `num_frames` frames (T·H·W), and `num_frames` is the sampled count before temporal padding.
pub fn smart_resize_video(
    num_frames: usize,
    height: usize,
    width: usize,
    temporal_factor: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if num_frames < temporal_factor {
        return Err(Error::bad_config(
            "video frames",
            format!("{num_frames} sampled frames, need at least {temporal_factor}"),
        ));
    }
    if height == 0 || width == 0 {
        return Err(Error::bad_config(
            "video size",
            format!("{width}x{height} has no pixels"),
        ));
    }
    let (mut h, mut w, f) = (height as f64, width as f64, factor as f64);
    if h < f || w < f {
        // Python: `int(height * scale)`, truncation.
        let scale = (f / h).max(f / w);
        h = (h * scale).trunc();
        w = (w * scale).trunc();
    }
    check_aspect(h, w)?;
    let n = num_frames as f64;
    let tf = temporal_factor as f64;
    let mut h_bar = py_round(h / f) * f;
    let mut w_bar = py_round(w / f) * f;
    let t_bar = py_round(n / tf) * tf;
    if t_bar * h_bar * w_bar > max_pixels as f64 {
        let beta = (n * h * w / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if t_bar * h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (n * h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// An RGB image, interleaved (HWC), 8 bits per channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// `height · width · 3` bytes, row-major, R G B.
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != width * height * 3 {
            return Err(Error::bad_config(
                "image buffer",
                format!(
                    "{} bytes for a {width}x{height} RGB image (expected {})",
                    data.len(),
                    width * height * 3
                ),
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
}

/// torch's antialiased bicubic kernel (`HelperInterpCubic::aa_filter`, a = −0.5 as in PIL), in
/// torch's evaluation order so the f64 weights round identically.
fn aa_cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// Fixed-point taps of one axis: output `i` reads `len[i]` source samples from `first[i]` with the
/// int16 weights `weights[i·taps ..]`, all at the shared `precision`.
struct AxisTaps {
    first: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<i32>,
    taps: usize,
    precision: u32,
}

/// `_compute_index_ranges_weights` + `_compute_indices_min_size_weights_aa` +
/// `_compute_index_ranges_int16_weights` (align_corners=false, size given, no scale factor).
fn axis_taps(input: usize, output: usize) -> AxisTaps {
    // interp_size = 4 for bicubic.
    let scale = input as f64 / output as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let taps = support.ceil() as usize * 2 + 1;
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut first = Vec::with_capacity(output);
    let mut len = Vec::with_capacity(output);
    let mut real = vec![0.0f64; output * taps];
    let mut wt_max = 0.0f64;
    for i in 0..output {
        let center = scale * (i as f64 + 0.5);
        // `static_cast<int64_t>` truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xsize = (((center + support + 0.5) as i64).min(input as i64) - xmin)
            .clamp(0, taps as i64) as usize;
        let row = &mut real[i * taps..i * taps + xsize];
        let mut total = 0.0f64;
        for (j, w) in row.iter_mut().enumerate() {
            *w = aa_cubic((j as f64 + xmin as f64 - center + 0.5) * invscale);
            total += *w;
        }
        if total != 0.0 {
            for w in row.iter_mut() {
                *w /= total;
                wt_max = wt_max.max(*w);
            }
        }
        first.push(xmin as usize);
        len.push(xsize);
    }
    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wt_max * (1u64 << (precision + 1)) as f64) as i64;
        if next >= 1 << 15 {
            break;
        }
        precision += 1;
    }
    let unit = (1u64 << precision) as f64;
    let weights = real
        .iter()
        .map(|&w| {
            let v = w * unit;
            // C's `(int)(±0.5 + v)`: round half away from zero, then truncate.
            if v < 0.0 {
                (-0.5 + v) as i32
            } else {
                (0.5 + v) as i32
            }
        })
        .collect();
    AxisTaps {
        first,
        len,
        weights,
        taps,
        precision,
    }
}

#[inline]
fn finish(acc: i64, precision: u32) -> u8 {
    (acc >> precision).clamp(0, 255) as u8
}

/// Resize an RGB image to `(out_h, out_w)` exactly as torch's uint8 antialiased bicubic does:
/// horizontal pass first, rounded to uint8, then the vertical pass. An axis whose size does not
/// change is skipped (torch skips it too, and it would be the identity anyway).
pub fn resize_bicubic_aa(src: &RgbImage, out_h: usize, out_w: usize) -> Result<RgbImage> {
    use rayon::prelude::*;
    if out_h == 0 || out_w == 0 || src.width == 0 || src.height == 0 {
        return Err(Error::bad_config(
            "resize",
            format!(
                "cannot resize {}x{} to {out_w}x{out_h}",
                src.width, src.height
            ),
        ));
    }
    const C: usize = 3;
    let (in_h, in_w) = (src.height, src.width);

    // 1. Horizontal pass: [in_h, in_w] -> [in_h, out_w].
    let horizontal;
    let mid: &[u8] = if out_w != in_w {
        let ax = axis_taps(in_w, out_w);
        let mut buf = vec![0u8; in_h * out_w * C];
        buf.par_chunks_mut(out_w * C)
            .zip(src.data.par_chunks(in_w * C))
            .for_each(|(dst, row)| {
                let half = 1i64 << ax.precision.saturating_sub(1);
                for x in 0..out_w {
                    let w = &ax.weights[x * ax.taps..x * ax.taps + ax.len[x]];
                    let base = ax.first[x] * C;
                    for c in 0..C {
                        let mut acc = half;
                        for (j, &wj) in w.iter().enumerate() {
                            acc += row[base + j * C + c] as i64 * wj as i64;
                        }
                        dst[x * C + c] = finish(acc, ax.precision);
                    }
                }
            });
        horizontal = buf;
        &horizontal
    } else {
        &src.data
    };

    // 2. Vertical pass: [in_h, out_w] -> [out_h, out_w].
    if out_h == in_h {
        return RgbImage::new(out_w, out_h, mid.to_vec());
    }
    let ay = axis_taps(in_h, out_h);
    let stride = out_w * C;
    let mut out = vec![0u8; out_h * stride];
    out.par_chunks_mut(stride).enumerate().for_each(|(y, dst)| {
        let half = 1i64 << ay.precision.saturating_sub(1);
        let w = &ay.weights[y * ay.taps..y * ay.taps + ay.len[y]];
        let base = ay.first[y];
        for (i, d) in dst.iter_mut().enumerate() {
            let mut acc = half;
            for (j, &wj) in w.iter().enumerate() {
                acc += mid[(base + j) * stride + i] as i64 * wj as i64;
            }
            *d = finish(acc, ay.precision);
        }
    });
    RgbImage::new(out_w, out_h, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: usize = 65536;
    const MAX: usize = 16777216;

    #[test]
    fn smart_resize_hub_examples() {
        // Spec §6.2, all reproduced with transformers 5.24.
        let cases = [
            ((1365, 2048), (1376, 2048)),
            ((480, 640), (480, 640)),
            ((1080, 1920), (1088, 1920)),
            ((100, 100), (256, 256)),
            ((5000, 3000), (4992, 3008)),
            ((64, 96), (224, 320)),
            ((10, 10), (256, 256)),
            ((1, 32), (64, 1472)),
            ((5, 900), (32, 3456)),
        ];
        for ((h, w), want) in cases {
            assert_eq!(smart_resize(h, w, 32, MIN, MAX).unwrap(), want, "{h}x{w}");
        }
    }

    #[test]
    fn smart_resize_rounds_half_to_even() {
        // 80/32 = 2.5 -> 2 and 48/32 = 1.5 -> 2 (spec §6.2).
        assert_eq!(smart_resize(48, 80, 32, 1024, MAX).unwrap(), (64, 64));
        assert_eq!(smart_resize(80, 80, 32, 1024, MAX).unwrap(), (64, 64));
    }

    #[test]
    fn smart_resize_rejects_extreme_aspect() {
        assert!(smart_resize(1, 201, 32, MIN, MAX).is_err());
        assert!(smart_resize(1, 200, 32, MIN, MAX).is_ok());
        assert!(smart_resize(0, 200, 32, MIN, MAX).is_err());
    }

    #[test]
    fn smart_resize_video_examples() {
        // Spec §7.3 with the Hub sizes.
        let (min, max) = (4096, 25165824);
        let cases = [
            ((20, 1080, 1920), (832, 1472)),
            ((4, 1080, 1920), (1088, 1920)),
            ((768, 1080, 1920), (128, 224)),
            ((21, 1080, 1920), (800, 1440)),
            ((5, 240, 320), (256, 320)),
            ((3, 20, 20), (32, 32)),
        ];
        for ((n, h, w), want) in cases {
            assert_eq!(
                smart_resize_video(n, h, w, 2, 32, min, max).unwrap(),
                want,
                "{n}x{h}x{w}"
            );
        }
        assert!(smart_resize_video(1, 100, 100, 2, 32, min, max).is_err());
    }

    #[test]
    fn same_size_resize_is_identity() {
        let data: Vec<u8> = (0..7 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = RgbImage::new(7, 5, data).unwrap();
        assert_eq!(resize_bicubic_aa(&img, 5, 7).unwrap(), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        // Weights of each output sum to 1 in fixed point up to rounding, so a flat image stays flat.
        let img = RgbImage::new(33, 17, vec![200; 33 * 17 * 3]).unwrap();
        for (h, w) in [(8, 9), (40, 70), (17, 5)] {
            let out = resize_bicubic_aa(&img, h, w).unwrap();
            assert!(out.data.iter().all(|&v| v == 200), "{h}x{w}");
        }
    }
}

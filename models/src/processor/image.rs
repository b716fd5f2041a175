//! Image loading and the Qwen2-VL image processor (spec §6): decode, RGB, smart_resize, torch's
//! uint8 antialiased bicubic, fused rescale+normalise, merge-window patchify.

use std::io::BufRead;
use std::io::Seek;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::config::ImageProcessorConfig;
use super::resize::{resize_bicubic_aa, smart_resize, RgbImage};
use crate::{Error, Result};

/// What to do with an alpha channel when converting to RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlphaMode {
    /// Composite onto white, as transformers' `convert_to_rgb` does for PIL images
    /// (`Image.alpha_composite` on an opaque white background).
    #[default]
    CompositeOnWhite,
    /// Drop the alpha channel, as `torchvision.io.decode_image(mode=RGB)` does when transformers is
    /// handed a file path.
    Drop,
}

/// Limits that keep a huge or hostile file from exhausting memory while decoding.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest width·height accepted, read from the header before any pixel is decoded.
    pub max_pixels: u64,
    /// Largest single allocation the decoder may make, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 256 MP covers any real photo or screenshot (a 100 MP image is ~300 MB as RGB8); the
        // allocation cap allows 16-bit RGBA at that size.
        Self {
            max_pixels: 256_000_000,
            max_alloc: 256_000_000 * 8 + (1 << 20),
        }
    }
}

fn decode_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ImageDecode {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Open an image file (PNG, JPEG, WebP, GIF first frame, BMP, TIFF), apply its EXIF orientation and
/// convert it to 8-bit RGB. The dimensions are checked against `limits` before decoding.
pub fn load_image(path: &Path, alpha: AlphaMode, limits: DecodeLimits) -> Result<RgbImage> {
    let reader = ImageReader::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.to_path_buf(),
            reason: "no such image file".into(),
        },
        _ => decode_error(path, e),
    })?;
    let jpeg_bytes = || std::fs::read(path).map_err(|e| decode_error(path, e));
    decode_reader(path, reader, alpha, limits, jpeg_bytes)
}

/// Decode an in-memory image file; `name` is only used in error messages.
pub fn load_image_from_bytes(
    name: &Path,
    bytes: &[u8],
    alpha: AlphaMode,
    limits: DecodeLimits,
) -> Result<RgbImage> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes));
    decode_reader(name, reader, alpha, limits, || Ok(bytes.to_vec()))
}

fn decode_reader<R: BufRead + Seek>(
    path: &Path,
    reader: ImageReader<R>,
    alpha: AlphaMode,
    limits: DecodeLimits,
    jpeg_bytes: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<RgbImage> {
    let reader = reader
        .with_guessed_format()
        .map_err(|e| decode_error(path, e))?;
    let format = reader.format();
    if format.is_none() {
        return Err(decode_error(
            path,
            "not an image format Glimpse can read (PNG, JPEG, WebP, GIF, BMP, TIFF)",
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    // 1. Check the size from the header, before any pixel buffer exists.
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(decode_error(path, format!("image is {w}x{h}")));
    }
    if w as u64 * h as u64 > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            path: path.to_path_buf(),
            width: w,
            height: h,
            max_pixels: limits.max_pixels,
        });
    }
    let mut lim = Limits::default();
    lim.max_alloc = Some(limits.max_alloc);
    decoder.set_limits(lim).map_err(|e| decode_error(path, e))?;
    // 2. Decode and turn upright (transformers applies `exif_transpose`). JPEG pixels come from
    //    libjpeg-turbo's decoder, as in PIL (see jpeg.rs).
    let orientation = decoder.orientation().map_err(|e| decode_error(path, e))?;
    let mut img = if format == Some(image::ImageFormat::Jpeg) {
        drop(decoder);
        let bytes = jpeg_bytes()?;
        match super::jpeg::decode_rgb(&bytes).map_err(|e| decode_error(path, e))? {
            Some(rgb) => DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(rgb.width as u32, rgb.height as u32, rgb.data)
                    .expect("libjpeg buffer has width·height·3 bytes"),
            ),
            // CMYK/YCCK: back to the image crate's decoder.
            None => image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                .map_err(|e| decode_error(path, e))?,
        }
    } else {
        DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?
    };
    img.apply_orientation(orientation);
    // 3. RGB8.
    Ok(to_rgb(img, alpha))
}

/// PIL's `alpha_composite` of one pixel over opaque white (`AlphaComposite.c`, integer path with 7
/// extra bits): with a destination alpha of 255 its coefficients reduce to `a·128` and `(255−a)·128`.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    let (c, a) = (c as u32, a as u32);
    let tmp = c * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
    let div255 = ((tmp >> 8) + tmp) >> 8;
    (div255 >> 7) as u8
}

/// Convert any decoded image to interleaved 8-bit RGB.
pub fn to_rgb(img: DynamicImage, alpha: AlphaMode) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // 16-bit sources follow PIL, whose output transformers sees: its PNG reader keeps the high
    // byte of 16-bit RGB(A) and LA, and opens 16-bit gray as "I;16", whose RGB conversion clamps
    // values above 255 to 255 (it does not scale).
    let img = match img {
        DynamicImage::ImageRgb16(buf) => DynamicImage::ImageRgb8(high_bytes(buf)),
        DynamicImage::ImageRgba16(buf) => DynamicImage::ImageRgba8(high_bytes(buf)),
        DynamicImage::ImageLumaA16(buf) => DynamicImage::ImageLumaA8(high_bytes(buf)),
        DynamicImage::ImageLuma16(buf) => {
            let (w, h) = buf.dimensions();
            let raw = buf
                .into_raw()
                .into_iter()
                .map(|v| v.min(255) as u8)
                .collect();
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, raw).expect("same size"))
        }
        img => img,
    };
    let data = match img {
        DynamicImage::ImageRgb8(buf) => buf.into_raw(),
        img if img.color().has_alpha() => {
            let rgba = img.into_rgba8();
            let mut out = Vec::with_capacity(w * h * 3);
            for px in rgba.as_raw().chunks_exact(4) {
                match alpha {
                    AlphaMode::CompositeOnWhite => {
                        out.extend([0, 1, 2].map(|c| over_white(px[c], px[3])));
                    }
                    AlphaMode::Drop => out.extend_from_slice(&px[..3]),
                }
            }
            out
        }
        img => img.into_rgb8().into_raw(),
    };
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

/// The high byte of each 16-bit sample.
fn high_bytes<P>(buf: image::ImageBuffer<P, Vec<u16>>) -> image::ImageBuffer<P::Map8, Vec<u8>>
where
    P: image::Pixel<Subpixel = u16> + Map8,
{
    let (w, h) = buf.dimensions();
    let raw = buf.into_raw().into_iter().map(|v| (v >> 8) as u8).collect();
    image::ImageBuffer::from_raw(w, h, raw).expect("same size")
}

/// The 8-bit pixel type of a 16-bit one.
trait Map8 {
    type Map8: image::Pixel<Subpixel = u8>;
}
impl Map8 for image::Rgb<u16> {
    type Map8 = image::Rgb<u8>;
}
impl Map8 for image::Rgba<u16> {
    type Map8 = image::Rgba<u8>;
}
impl Map8 for image::LumaA<u16> {
    type Map8 = image::LumaA<u8>;
}

/// The processed images of one prompt, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageBatch {
    /// `[rows, C·T·P·P]` float32, rows of all images concatenated (spec §6.4).
    pub pixel_values: Vec<f32>,
    /// Row width `C·T·P·P`.
    pub row_len: usize,
    /// `(t, h, w)` in patches per image; t is 1 for images.
    pub grid_thw: Vec<[usize; 3]>,
    /// The size each image was resized to, `(height, width)`.
    pub resized: Vec<(usize, usize)>,
}

impl ImageBatch {
    pub fn rows(&self) -> usize {
        self.pixel_values
            .len()
            .checked_div(self.row_len)
            .unwrap_or(0)
    }
}

/// Per-channel `(mean, std)` as transformers fuses them with the rescale factor
/// (`_fuse_mean_std_and_rescale_factor`): float32 tensors times the float `1/rescale_factor`.
pub(crate) fn fused_mean_std(
    cfg_mean: &[f64; 3],
    cfg_std: &[f64; 3],
    rescale: f64,
) -> [(f32, f32); 3] {
    let inv = (1.0 / rescale) as f32;
    [0, 1, 2].map(|c| (cfg_mean[c] as f32 * inv, cfg_std[c] as f32 * inv))
}

/// Append the patch rows of `frames` (all the same size, already resized; `temporal_patch_size`
/// of them per temporal group) to `out`, in merge-window order with features `(c, t, y, x)`
/// (spec §6.4, §7.3). `frames.len()` must be a multiple of `temporal`.
pub(crate) fn patchify_into(
    out: &mut Vec<f32>,
    frames: &[&RgbImage],
    patch: usize,
    merge: usize,
    temporal: usize,
    norm: &[(f32, f32); 3],
) -> [usize; 3] {
    let (h, w) = (frames[0].height, frames[0].width);
    let (gh, gw, gt) = (h / patch, w / patch, frames.len() / temporal);
    let row_len = 3 * temporal * patch * patch;
    out.reserve(gt * gh * gw * row_len);
    for t0 in 0..gt {
        for br in 0..gh / merge {
            for bc in 0..gw / merge {
                for ir in 0..merge {
                    for ic in 0..merge {
                        let (y0, x0) = ((br * merge + ir) * patch, (bc * merge + ic) * patch);
                        for (c, &(mean, std)) in norm.iter().enumerate() {
                            for t in 0..temporal {
                                let f = frames[t0 * temporal + t];
                                for y in 0..patch {
                                    let row = &f.data[((y0 + y) * w + x0) * 3..];
                                    for x in 0..patch {
                                        // tvF.normalize: `(x - mean) / std` in float32.
                                        out.push((row[x * 3 + c] as f32 - mean) / std);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    [gt, gh, gw]
}

/// The image half of `Qwen3VLProcessor`: resize, rescale+normalise and patchify each image.
pub fn preprocess_images(images: &[RgbImage], cfg: &ImageProcessorConfig) -> Result<ImageBatch> {
    let factor = cfg.patch_size * cfg.merge_size;
    let norm = fused_mean_std(&cfg.image_mean, &cfg.image_std, cfg.rescale_factor);
    let mut batch = ImageBatch {
        row_len: 3 * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size,
        ..Default::default()
    };
    for img in images {
        let (rh, rw) = smart_resize(
            img.height,
            img.width,
            factor,
            cfg.min_pixels,
            cfg.max_pixels,
        )?;
        let resized = if (rh, rw) == (img.height, img.width) {
            None
        } else {
            Some(resize_bicubic_aa(img, rh, rw)?)
        };
        let frame = resized.as_ref().unwrap_or(img);
        // An image is one frame repeated over the temporal patch (spec §6.4).
        let frames = vec![frame; cfg.temporal_patch_size];
        let grid = patchify_into(
            &mut batch.pixel_values,
            &frames,
            cfg.patch_size,
            cfg.merge_size,
            cfg.temporal_patch_size,
            &norm,
        );
        batch.grid_thw.push(grid);
        batch.resized.push((rh, rw));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_white_matches_pil_endpoints() {
        assert_eq!(over_white(17, 255), 17);
        assert_eq!(over_white(17, 0), 255);
        // PIL: alpha_composite(white, (0,0,0,128)) -> 127.
        assert_eq!(over_white(0, 128), 127);
    }

    #[test]
    fn patchify_layout() {
        // 4x4 image, patch 2, merge 2, temporal 2: one merge window of four patches.
        let data: Vec<u8> = (0..4 * 4 * 3).map(|i| i as u8).collect();
        let img = RgbImage::new(4, 4, data).unwrap();
        let mut out = Vec::new();
        let norm = [(0.0, 1.0); 3];
        let grid = patchify_into(&mut out, &[&img, &img], 2, 2, 2, &norm);
        assert_eq!(grid, [1, 2, 2]);
        assert_eq!(out.len(), 4 * 3 * 2 * 2 * 2);
        // Row 1 = patch (ir 0, ic 1): channel 0, t 0, y 0, x 0 is pixel (0, 2), channel 0.
        let px = |y: usize, x: usize, c: usize| ((y * 4 + x) * 3 + c) as f32;
        let row1 = &out[24..48];
        assert_eq!(row1[0], px(0, 2, 0));
        // Within a row: value[c·8 + t·4 + y·2 + x].
        assert_eq!(row1[8 + 4 + 2 + 1], px(1, 3, 1));
    }

    #[test]
    fn fused_normalisation_of_181() {
        let norm = fused_mean_std(&[0.5; 3], &[0.5; 3], 1.0 / 255.0);
        assert_eq!(norm[0], (127.5, 127.5));
        assert!(((181.0 - norm[0].0) / norm[0].1 - 0.41961).abs() < 1e-5);
    }
}

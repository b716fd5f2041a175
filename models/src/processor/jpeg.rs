//! JPEG pixels as libjpeg-turbo produces them (PIL's decoder, hence transformers' reference):
//! the accurate integer IDCT (`JDCT_ISLOW`), fancy upsampling and libjpeg's fixed-point
//! YCbCr→RGB. The image crate's decoder (zune-jpeg) uses another IDCT and differs by up to 3
//! levels on ~1% of values, which the processor would carry straight into `pixel_values`.
//! mozjpeg's decoder is libjpeg-turbo's.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg_sys as jpeg;

use super::resize::RgbImage;

/// libjpeg reports fatal errors through `error_exit`, which must not return; unwinding out of it
/// (the `unwinding` feature builds the C code with unwind tables) brings the message back here.
unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg::jpeg_common_struct) {
    let buf = [0u8; 80]; // the buffer size mozjpeg-sys declares
    if let Some(fmt) = (*cinfo.err).format_message {
        fmt(cinfo, &buf);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let msg = String::from_utf8_lossy(&buf[..end]).into_owned();
    std::panic::resume_unwind(Box::new(msg));
}

thread_local! {
    /// Set when libjpeg warns that the data ended before the image did.
    static PREMATURE_END: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// libjpeg pads a truncated file with gray and only warns; PIL refuses such a file ("image file is
/// truncated"), so the warning becomes an error. Other warnings are ignored, as PIL does.
unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg::jpeg_common_struct, level: i32) {
    if level != -1 {
        return;
    }
    let buf = [0u8; 80];
    if let Some(fmt) = (*cinfo.err).format_message {
        fmt(cinfo, &buf);
    }
    if String::from_utf8_lossy(&buf).contains("Premature end of JPEG file") {
        PREMATURE_END.with(|f| f.set(true));
    }
}

/// Decode a baseline/progressive JPEG with 1 (gray) or 3 (YCbCr/RGB) components to RGB.
/// Returns `Ok(None)` for colour spaces PIL converts differently (CMYK, YCCK), so the caller can
/// fall back to its generic decoder.
pub fn decode_rgb(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    let result = catch_unwind(AssertUnwindSafe(|| unsafe { decode_inner(bytes) }));
    match result {
        Ok(r) => r,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "libjpeg failed".into())),
    }
}

unsafe fn decode_inner(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    let mut err: jpeg::jpeg_error_mgr = std::mem::zeroed();
    let mut cinfo: jpeg::jpeg_decompress_struct = std::mem::zeroed();
    let handlers = jpeg::jpeg_std_error(&mut err);
    handlers.error_exit = Some(error_exit);
    handlers.emit_message = Some(emit_message);
    cinfo.common.err = handlers;
    jpeg::jpeg_create_decompress(&mut cinfo);
    // Destroy the decompressor on every path, including an unwinding libjpeg error.
    struct Guard<'a>(&'a mut jpeg::jpeg_decompress_struct);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            unsafe { jpeg::jpeg_destroy_decompress(self.0) };
        }
    }
    PREMATURE_END.with(|f| f.set(false));
    let guard = Guard(&mut cinfo);
    let cinfo = &mut *guard.0;
    jpeg::jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as _);
    jpeg::jpeg_read_header(cinfo, 1);
    use jpeg::J_COLOR_SPACE::*;
    match (cinfo.num_components, cinfo.jpeg_color_space) {
        (1, JCS_GRAYSCALE) | (3, JCS_YCbCr) | (3, JCS_RGB) => {}
        _ => return Ok(None),
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg::jpeg_start_decompress(cinfo);
    let (w, h) = (cinfo.output_width as usize, cinfo.output_height as usize);
    if cinfo.output_components != 3 {
        return Err(format!(
            "libjpeg produced {} components, expected 3",
            cinfo.output_components
        ));
    }
    let mut data = vec![0u8; w * h * 3];
    while (cinfo.output_scanline as usize) < h {
        let row = cinfo.output_scanline as usize;
        let mut ptr = data[row * w * 3..].as_mut_ptr();
        let read = jpeg::jpeg_read_scanlines(cinfo, &mut ptr, 1);
        if read == 0 {
            return Err("the JPEG data ended early".into());
        }
    }
    if PREMATURE_END.with(|f| f.get()) {
        return Err("the file is truncated".into());
    }
    jpeg::jpeg_finish_decompress(cinfo);
    RgbImage::new(w, h, data)
        .map(Some)
        .map_err(|e| e.to_string())
}

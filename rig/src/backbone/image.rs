//! 8-bit images as PNG, for what shows images without a display: the live dashboard's
//! thumbnails and Inception tile, and the report's inception images (as inline `data:` URIs,
//! so a report stays one self-contained file).

use base64::Engine;

/// `data` (rows of `width` samples of `colour`, 8 bits each) as a PNG file.
pub fn encode_png(
    width: u32,
    height: u32,
    colour: png::ColorType,
    data: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()?;
    Ok(out)
}

/// A grayscale image as a `data:image/png;base64,...` URI.
pub fn gray_png_data_uri(
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Result<String, png::EncodingError> {
    let png = encode_png(width, height, png::ColorType::Grayscale, pixels)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URI decodes (by the base64 and png crates' decoders) to the pixels; a size that
    /// does not match the pixels is an error, not a panic.
    #[test]
    fn a_data_uri_round_trips() {
        let px: Vec<u8> = (0..12u8).map(|i| i * 20).collect();
        let uri = gray_png_data_uri(4, 3, &px).unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(&buf[..info.buffer_size()], &px[..]);
        assert!(gray_png_data_uri(5, 3, &px).is_err());
    }
}

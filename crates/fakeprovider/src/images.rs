//! Channel logos and VOD posters: real PNG images, so that players and the
//! web UI show a picture where a provider's catalog points at one (a 404
//! there looks like a broken gateway). Each picture is a solid colour taken
//! from its file name, so neighbouring channels look different.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const LOGO: (u32, u32) = (128, 128);
const POSTER: (u32, u32) = (200, 300);

/// `/logos/{file}`: a square logo for any `NAME.png`.
pub(crate) async fn logo(Path(file): Path<String>) -> Response {
    picture(&file, LOGO)
}

/// `/posters/{file}`: a portrait poster for any `NAME.png`.
pub(crate) async fn poster(Path(file): Path<String>) -> Response {
    picture(&file, POSTER)
}

fn picture(file: &str, (width, height): (u32, u32)) -> Response {
    let Some(stem) = file.strip_suffix(".png").filter(|s| !s.is_empty()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match png(colour(stem), width, height) {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "max-age=86400")], bytes).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A colour from the name (FNV-1a), kept away from black and white.
fn colour(name: &str) -> [u8; 3] {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let [r, g, b, ..] = hash.to_le_bytes();
    [40 + r % 176, 40 + g % 176, 40 + b % 176]
}

/// A solid-colour RGB PNG.
fn png(rgb: [u8; 3], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = rgb.iter().copied().cycle().take((width * height * 3) as usize).collect();
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_png_of_the_right_size_and_differ_by_name() {
        let one = png(colour("1"), 128, 128).unwrap();
        assert_eq!(&one[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the chunk header.
        assert_eq!(&one[16..24], &[0, 0, 0, 128, 0, 0, 0, 128]);
        assert_ne!(colour("1"), colour("2"));
        assert_eq!(colour("movie3"), colour("movie3"));
    }
}

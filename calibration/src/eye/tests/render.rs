//! A small synthetic eye-camera renderer for tests: textured background, iris, an
//! anti-aliased elliptical pupil, an optional corneal reflection, an optional lid, noise.

use crate::eye::Ellipse;

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    pub width: usize,
    pub height: usize,
    pub pupil: Option<Ellipse>,
    /// Corneal reflection centre and radius, px.
    pub reflection: Option<([f64; 2], f64)>,
    /// Rows above this y are covered by the lid (fur), if set.
    pub lid_y: Option<f64>,
    pub noise: f64,
    pub seed: u64,
}

impl Scene {
    pub fn new(pupil: Ellipse) -> Scene {
        Scene {
            width: 320,
            height: 240,
            pupil: Some(pupil),
            reflection: None,
            lid_y: None,
            noise: 3.0,
            seed: 1,
        }
    }
}

pub fn ellipse(cx: f64, cy: f64, a: f64, b: f64, angle: f64) -> Ellipse {
    Ellipse {
        centre_x_px: cx,
        centre_y_px: cy,
        semi_major_px: a,
        semi_minor_px: b,
        angle_rad: angle,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of 4 uniforms, unit variance).
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() * 3f64.sqrt() - 2.0 * 3f64.sqrt()
    }
}

fn inside(e: &Ellipse, x: f64, y: f64) -> bool {
    let (s, c) = e.angle_rad.sin_cos();
    let (dx, dy) = (x - e.centre_x_px, y - e.centre_y_px);
    let u = dx * c + dy * s;
    let v = -dx * s + dy * c;
    (u / e.semi_major_px).powi(2) + (v / e.semi_minor_px).powi(2) <= 1.0
}

pub fn render(scene: &Scene) -> Vec<u8> {
    let (w, h) = (scene.width, scene.height);
    let mut rng = Rng(scene.seed);
    // Blotchy fur: a coarse random grid, bilinearly interpolated.
    let cell = 12usize;
    let (gw, gh) = (w / cell + 2, h / cell + 2);
    let grid: Vec<f64> = (0..gw * gh).map(|_| 8.0 * rng.normal()).collect();
    let mut out = vec![0u8; w * h];
    const SS: usize = 4;
    for y in 0..h {
        for x in 0..w {
            let (gx, gy) = (x as f64 / cell as f64, y as f64 / cell as f64);
            let (ix, iy) = (gx as usize, gy as usize);
            let (fx, fy) = (gx - ix as f64, gy - iy as f64);
            let g = |i: usize, j: usize| grid[j * gw + i];
            let fur = 110.0
                + (1.0 - fx) * (1.0 - fy) * g(ix, iy)
                + fx * (1.0 - fy) * g(ix + 1, iy)
                + (1.0 - fx) * fy * g(ix, iy + 1)
                + fx * fy * g(ix + 1, iy + 1);
            let mut acc = 0.0;
            for sy in 0..SS {
                for sx in 0..SS {
                    let px = x as f64 + (sx as f64 + 0.5) / SS as f64;
                    let py = y as f64 + (sy as f64 + 0.5) / SS as f64;
                    let mut v = 140.0;
                    if let Some(p) = &scene.pupil
                        && inside(p, px, py)
                    {
                        v = 22.0;
                    }
                    if let Some((c, r)) = scene.reflection
                        && (px - c[0]).hypot(py - c[1]) <= r
                    {
                        v = 250.0;
                    }
                    if scene.pupil.is_none() || scene.lid_y.is_some_and(|l| py < l) {
                        v = fur;
                    }
                    acc += v;
                }
            }
            let v = acc / (SS * SS) as f64 + scene.noise * rng.normal();
            out[y * w + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

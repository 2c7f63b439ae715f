// Shared by every stimulus kind: the uniforms, the fullscreen triangle, pixel -> direction
// (linear view or spherically corrected monitor), great-circle distance, and the output stage
// (gamma LUT, photodiode patch). Each kind's file appends `fn luminance(d: vec2<f32>) -> f32`
// (d = azimuth, elevation in degrees; result in [0, 1]).

struct Params {
    // x: projection (0 linear, 1 monitor); y: kind flags; z: dot count;
    // w: output flags (bit 0 apply gamma LUT, bit 1 draw the photodiode patch).
    flags: vec4<u32>,
    // Linear view: az = x * lin.x + lin.y, el = y * lin.z + lin.w (x, y in pixels).
    lin: vec4<f32>,
    // Monitor: screen cm from the perpendicular's foot, x_cm = x * screen.x + screen.y,
    // y_cm = y * screen.z + screen.w.
    screen: vec4<f32>,
    // Monitor rotation: world direction = rot0.xyz * d + rot1.xyz * x_cm + rot2.xyz * y_cm,
    // with d = rot0.w the eye-to-screen distance.
    rot0: vec4<f32>,
    rot1: vec4<f32>,
    rot2: vec4<f32>,
    // Kind parameters (see each kind's file).
    s0: vec4<f32>,
    s1: vec4<f32>,
    s2: vec4<f32>,
    s3: vec4<f32>,
    // Photodiode patch: x0, y0, x1, y1 in pixels (ends exclusive); level in patch_level.x.
    patch_rect: vec4<f32>,
    patch_level: vec4<f32>,
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LUT: array<f32>;
@group(0) @binding(2) var FIELD: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> DOTS: array<vec4<f32>>;

const TAU: f32 = 6.283185307179586;
const DEG: f32 = 0.017453292519943295;

// One triangle covering the whole target: (-1, -1), (3, -1), (-1, 3).
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32(i32(i & 1u) * 4 - 1);
    let y = f32(i32(i >> 1u) * 4 - 1);
    return vec4<f32>(x, y, 0.0, 1.0);
}

// Azimuth and elevation (deg) of the pixel centre at framebuffer position p.
fn direction(p: vec2<f32>) -> vec2<f32> {
    if (P.flags.x == 0u) {
        return vec2<f32>(p.x * P.lin.x + P.lin.y, p.y * P.lin.z + P.lin.w);
    }
    let xc = p.x * P.screen.x + P.screen.y;
    let yc = p.y * P.screen.z + P.screen.w;
    let w = P.rot0.xyz * P.rot0.w + P.rot1.xyz * xc + P.rot2.xyz * yc;
    return vec2<f32>(atan2(w.y, w.x) / DEG, atan2(w.z, length(w.xy)) / DEG);
}

// Great-circle distance (deg) by the haversine formula.
fn great_circle(a: vec2<f32>, b: vec2<f32>) -> f32 {
    let p1 = a.y * DEG;
    let p2 = b.y * DEG;
    let sdp = sin(0.5 * (p2 - p1));
    let sdl = sin(0.5 * (b.x - a.x) * DEG);
    let h = sdp * sdp + cos(p1) * cos(p2) * sdl * sdl;
    return 2.0 * asin(sqrt(min(h, 1.0))) / DEG;
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    if ((P.flags.w & 2u) != 0u && pos.x >= P.patch_rect.x && pos.x < P.patch_rect.z
        && pos.y >= P.patch_rect.y && pos.y < P.patch_rect.w) {
        let v = P.patch_level.x;
        return vec4<f32>(v, v, v, 1.0);
    }
    var l = clamp(luminance(direction(pos.xy)), 0.0, 1.0);
    if ((P.flags.w & 1u) != 0u) {
        let x = l * 255.0;
        let i = min(u32(floor(x)), 254u);
        l = mix(LUT[i], LUT[i + 1u], x - f32(i));
    }
    return vec4<f32>(l, l, l, 1.0);
}

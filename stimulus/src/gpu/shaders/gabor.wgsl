// Gabor. s0 = (cos θ, sin θ, sf cycles/deg, phase cycles at the centre);
// s1 = (centre az, centre el, contrast, σ deg).
fn luminance(d: vec2<f32>) -> f32 {
    let rel = d - P.s1.xy;
    let x = fract(P.s0.z * (rel.x * P.s0.x + rel.y * P.s0.y) + P.s0.w);
    let r = great_circle(d, P.s1.xy);
    let envelope = exp(-r * r / (2.0 * P.s1.w * P.s1.w));
    return 0.5 + 0.5 * P.s1.z * envelope * sin(TAU * x);
}

// Grating. s0 = (cos θ, sin θ, sf cycles/deg, phase cycles at the reference);
// s1 = (reference az, reference el, contrast, aperture radius deg);
// flags.y: bit 0 square wave, bit 1 circular aperture.
fn luminance(d: vec2<f32>) -> f32 {
    if ((P.flags.y & 2u) != 0u && great_circle(d, P.s1.xy) > P.s1.w) {
        return 0.5;
    }
    let rel = d - P.s1.xy;
    let x = fract(P.s0.z * (rel.x * P.s0.x + rel.y * P.s0.y) + P.s0.w);
    var w = sin(TAU * x);
    if ((P.flags.y & 1u) != 0u) {
        w = select(-1.0, 1.0, x < 0.5);
    }
    return 0.5 + 0.5 * P.s1.z * w;
}

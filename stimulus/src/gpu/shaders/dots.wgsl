// Dots: DOTS[i] = (az, el, sign, unused), flags.z of them; s1 = (unused, unused, contrast,
// radius deg). Later dots are drawn over earlier ones.
fn luminance(d: vec2<f32>) -> f32 {
    var v = 0.0;
    for (var i = 0u; i < P.flags.z; i++) {
        let q = DOTS[i];
        if (great_circle(d, q.xy) <= P.s1.w) {
            v = q.z;
        }
    }
    return 0.5 + 0.5 * P.s1.z * v;
}

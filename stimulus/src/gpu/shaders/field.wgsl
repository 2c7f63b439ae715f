// A field of values in [-1, 1] in the FIELD texture (sparse noise, pink noise, movies, images).
// s2 = (corner az, corner el, texel az deg, texel el deg) of the top-left corner;
// s3 = (shift az, shift el, contrast, unused); flags.y: bit 0 bilinear, bit 1 wrap.
fn texel(i: i32, j: i32, wrap: bool, size: vec2<i32>) -> f32 {
    var ii = clamp(i, 0, size.x - 1);
    var jj = clamp(j, 0, size.y - 1);
    if (wrap) {
        ii = ((i % size.x) + size.x) % size.x;
        jj = ((j % size.y) + size.y) % size.y;
    }
    return textureLoad(FIELD, vec2<i32>(ii, jj), 0).r;
}

fn luminance(d: vec2<f32>) -> f32 {
    let u = (d.x - P.s3.x - P.s2.x) / P.s2.z;
    let w = (P.s2.y - (d.y - P.s3.y)) / P.s2.w;
    let size = vec2<i32>(textureDimensions(FIELD));
    let wrap = (P.flags.y & 2u) != 0u;
    if (!wrap && (u < 0.0 || w < 0.0 || u >= f32(size.x) || w >= f32(size.y))) {
        return 0.5;
    }
    var v: f32;
    if ((P.flags.y & 1u) == 0u) {
        v = texel(i32(floor(u)), i32(floor(w)), wrap, size);
    } else {
        let x = u - 0.5;
        let y = w - 0.5;
        let x0 = floor(x);
        let y0 = floor(y);
        let i0 = i32(x0);
        let j0 = i32(y0);
        let top = mix(texel(i0, j0, wrap, size), texel(i0 + 1, j0, wrap, size), x - x0);
        let bottom = mix(texel(i0, j0 + 1, wrap, size), texel(i0 + 1, j0 + 1, wrap, size), x - x0);
        v = mix(top, bottom, y - y0);
    }
    return 0.5 + 0.5 * P.s3.z * v;
}

//! The WGSL shaders, one per kind of content, each prefixed by the shared `common.wgsl`, and
//! their validation with naga (run in a test: shaders otherwise only compile at run time).

/// Which fragment shader draws a content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderKind {
    Gray,
    Grating,
    Gabor,
    Field,
    Dots,
}

const COMMON: &str = include_str!("shaders/common.wgsl");

impl ShaderKind {
    pub const ALL: [ShaderKind; 5] = [
        ShaderKind::Gray,
        ShaderKind::Grating,
        ShaderKind::Gabor,
        ShaderKind::Field,
        ShaderKind::Dots,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            ShaderKind::Gray => "gray",
            ShaderKind::Grating => "grating",
            ShaderKind::Gabor => "gabor",
            ShaderKind::Field => "field",
            ShaderKind::Dots => "dots",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ShaderKind::Gray => include_str!("shaders/gray.wgsl"),
            ShaderKind::Grating => include_str!("shaders/grating.wgsl"),
            ShaderKind::Gabor => include_str!("shaders/gabor.wgsl"),
            ShaderKind::Field => include_str!("shaders/field.wgsl"),
            ShaderKind::Dots => include_str!("shaders/dots.wgsl"),
        }
    }

    /// The full WGSL source: the common prelude, then the kind's `luminance`.
    pub fn source(self) -> String {
        format!("{COMMON}\n{}", self.body())
    }
}

/// Parse and validate one shader with naga (the front end wgpu itself uses), with default
/// capabilities; the error is naga's report with the source location.
pub fn validate(kind: ShaderKind) -> Result<(), String> {
    use wgpu::naga;
    let src = kind.source();
    let module = naga::front::wgsl::parse_str(&src)
        .map_err(|e| format!("{}.wgsl: {}", kind.name(), e.emit_to_string(&src)))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| format!("{}.wgsl: {}", kind.name(), e.emit_to_string(&src)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shader_validates_with_naga() {
        for kind in ShaderKind::ALL {
            if let Err(e) = validate(kind) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn a_broken_shader_is_reported_with_its_name() {
        use wgpu::naga;
        let src = format!("{COMMON}\nfn luminance(d: vec2<f32>) -> f32 {{ return d; }}");
        let module = naga::front::wgsl::parse_str(&src);
        let failed = match module {
            Err(_) => true,
            Ok(m) => naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            )
            .validate(&m)
            .is_err(),
        };
        assert!(failed, "returning a vec2 as f32 must not validate");
    }
}

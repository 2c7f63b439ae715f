//! Weight loading is strict and its errors name the tensor.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use twinloop_model::{ModelError, Twin, TwinConfig, Weights};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn cfg() -> TwinConfig {
    TwinConfig::from_json(&std::fs::read_to_string(fixture("parity_config.json")).unwrap()).unwrap()
}

fn build(map: std::collections::HashMap<String, Tensor>) -> Result<Twin, ModelError> {
    Twin::new(cfg(), &Weights::from_tensors(map).unwrap(), &Device::Cpu)
}

#[test]
fn missing_tensor_is_named() {
    let mut map = Weights::load(&fixture("parity_weights.safetensors"))
        .unwrap()
        .to_map();
    map.remove("core.recurrent.proj_f.gains.1");
    let err = build(map).err().expect("must fail");
    assert!(
        matches!(err, ModelError::MissingTensor { ref name } if name == "core.recurrent.proj_f.gains.1"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let mut map = Weights::load(&fixture("parity_weights.safetensors"))
        .unwrap()
        .to_map();
    map.insert(
        "readout.biases.2".into(),
        Tensor::zeros((24, 1), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let err = build(map).err().expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("readout.biases.2") && msg.contains("[25, 1]"),
        "{msg}"
    );
}

#[test]
fn unused_tensor_is_named() {
    let mut map = Weights::load(&fixture("parity_weights.safetensors"))
        .unwrap()
        .to_map();
    map.insert(
        "core.recurrent.extra.weights.0".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let err = build(map).err().expect("must fail");
    assert!(
        err.to_string().contains("core.recurrent.extra.weights.0"),
        "{err}"
    );
}

#[test]
fn too_many_streams_in_config_is_caught() {
    let mut c = cfg();
    c.streams = 4;
    let w = Weights::load(&fixture("parity_weights.safetensors")).unwrap();
    let err = Twin::new(c, &w, &Device::Cpu).err().expect("must fail");
    assert!(err.to_string().contains(".3"), "{err}");
}

#[test]
fn default_config_spec_is_complete_and_fnn_sized() {
    // Synthesised weights list every tensor the released network needs; count parameters.
    let w = Weights::synthetic(1);
    let c = TwinConfig {
        units: 8221,
        ..TwinConfig::default()
    };
    let twin = Twin::new(c, &w, &Device::Cpu);
    assert!(twin.is_ok());
    // fnn's network built with these classes at 8,221 units has 8,850,395 parameters (counted
    // in PyTorch); we also read its three monitor-pixel buffers.
    assert_eq!(w.synthesised_elements(), 8_850_395 + 3);
    assert!(
        w.taken()
            .iter()
            .any(|n| n == "core.recurrent.proj_x.0.weights.3")
    );
}

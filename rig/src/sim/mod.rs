//! The simulated rig: a synthetic mouse, microscope, eye camera and treadmill (being written).

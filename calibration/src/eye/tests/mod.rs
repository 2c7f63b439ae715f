//! Tests of the eye module: synthetic frames rendered here, and the OpenCV fixtures.
mod opencv_fixtures;
mod pupil;
mod render;

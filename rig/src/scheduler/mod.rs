//! The scheduler: which stimulus comes next ([`selector`]) and when each display frame flips
//! ([`renderer`]). The selector fills a one-deep queue; the renderer takes from it at each trial
//! onset and never waits on it (an empty queue shows gray and counts an underrun).

pub mod renderer;
pub mod selector;

pub use renderer::{PlaceholderRenderer, RendererReport};
pub use selector::{Decision, RandomSelector, Selector, SelectorThread};

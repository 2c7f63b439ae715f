//! A library of stimuli a selector chooses from.

use crate::StimulusSpec;
use serde::{Deserialize, Serialize};

/// Index of a stimulus in its library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StimulusId(pub u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryEntry {
    pub id: StimulusId,
    pub name: String,
    pub spec: StimulusSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Library {
    pub entries: Vec<LibraryEntry>,
}

impl Library {
    /// Drifting gratings in 8 directions at 2 spatial frequencies, full contrast, 2 Hz.
    pub fn small_gratings() -> Library {
        let mut entries = Vec::new();
        for sf_cpd in [0.04, 0.08] {
            for k in 0..8 {
                let direction_deg = 45.0 * k as f64;
                entries.push(LibraryEntry {
                    id: StimulusId(entries.len() as u32),
                    name: format!("grating dir {direction_deg:.0} sf {sf_cpd}"),
                    spec: StimulusSpec::grating(direction_deg, sf_cpd, 2.0, 1.0, 0.0),
                });
            }
        }
        Library { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: StimulusId) -> Option<&LibraryEntry> {
        self.entries.get(id.0 as usize)
    }
}

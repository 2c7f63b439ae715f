//! At most one report per label per interval, the rest counted: a flood of garbage must not
//! turn into a flood of warnings and log records (a 10 s flood once wrote 290 MB to stderr and
//! 160 MB to the session log). Counters stay exact; only the words are thinned.
//!
//! Pure and clocked by its caller (times in nanoseconds), so a table test drives it.

/// What to do with one more event under a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Report this one; `held` events under the label were held back since the last report.
    Report { held: u64 },
    /// Count it and say nothing: the label reported less than an interval ago.
    Hold,
}

/// A label's events held back since its last report, due for a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub label: &'static str,
    pub held: u64,
    /// When the label last reported, ns.
    pub since_ns: i64,
}

#[derive(Debug, Clone)]
struct Entry {
    label: &'static str,
    last_report_ns: i64,
    held: u64,
}

/// Per-label limiter: the first event of a label is reported, then at most one per
/// `interval_ns`; the ones in between are held and counted, and reported as a number with the
/// next report or by [`RateLimit::due`].
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval_ns: i64,
    // Few labels (the protocol's and ingest's, about 16): a scan beats a map.
    entries: Vec<Entry>,
}

impl RateLimit {
    pub fn new(interval_ns: i64) -> RateLimit {
        RateLimit {
            interval_ns: interval_ns.max(1),
            entries: Vec::new(),
        }
    }

    /// One more event under `label` at `now_ns`.
    pub fn check(&mut self, label: &'static str, now_ns: i64) -> Verdict {
        let interval = self.interval_ns;
        match self.entries.iter_mut().find(|e| e.label == label) {
            None => {
                self.entries.push(Entry {
                    label,
                    last_report_ns: now_ns,
                    held: 0,
                });
                Verdict::Report { held: 0 }
            }
            Some(e) if now_ns.saturating_sub(e.last_report_ns) >= interval => {
                e.last_report_ns = now_ns;
                Verdict::Report {
                    held: std::mem::take(&mut e.held),
                }
            }
            Some(e) => {
                e.held += 1;
                Verdict::Hold
            }
        }
    }

    /// Labels holding events whose last report is at least an interval old: each is returned
    /// once (its count reset and its report time moved to `now_ns`), so a flood that stops is
    /// still summarised.
    pub fn due(&mut self, now_ns: i64) -> Vec<Held> {
        let interval = self.interval_ns;
        self.entries
            .iter_mut()
            .filter(|e| e.held > 0 && now_ns.saturating_sub(e.last_report_ns) >= interval)
            .map(|e| {
                let since_ns = std::mem::replace(&mut e.last_report_ns, now_ns);
                Held {
                    label: e.label,
                    held: std::mem::take(&mut e.held),
                    since_ns,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// Each row: an event (label, time) or a `due` call, and what must come out.
    #[test]
    fn one_report_per_label_per_interval_and_every_event_accounted() {
        let mut r = RateLimit::new(S);
        let report = |held| Some(Verdict::Report { held });
        let hold = Some(Verdict::Hold);
        let rows: [(&'static str, i64, Option<Verdict>); 9] = [
            ("bad_magic", 0, report(0)),
            ("bad_magic", 1, hold),
            ("bad_magic", S - 1, hold),
            // Another label has its own budget.
            ("frame_count", 10, report(0)),
            // An interval later: reported, with the two held since.
            ("bad_magic", S, report(2)),
            ("bad_magic", S + 5, hold),
            ("frame_count", S + 9, hold),
            ("frame_count", S + 10, report(1)),
            ("bad_magic", S + 6, hold),
        ];
        for (i, (label, t, want)) in rows.into_iter().enumerate() {
            assert_eq!(Some(r.check(label, t)), want, "row {i}: {label} at {t}");
        }
        // bad_magic holds 2 since S; not due before S + interval.
        assert_eq!(r.due(2 * S - 1), vec![]);
        assert_eq!(
            r.due(2 * S),
            vec![Held {
                label: "bad_magic",
                held: 2,
                since_ns: S
            }]
        );
        assert_eq!(r.due(10 * S), vec![], "each held event is summarised once");
    }

    /// A flood: a million events in 10 s give 10 reports and account for every event.
    #[test]
    fn a_flood_is_thinned_to_one_report_a_second_and_counted_exactly() {
        let mut r = RateLimit::new(S);
        let (mut reports, mut accounted) = (0u64, 0u64);
        let n = 1_000_000i64;
        for i in 0..n {
            if let Verdict::Report { held } = r.check("payload_size", i * 10 * S / n) {
                reports += 1;
                accounted += 1 + held;
            }
        }
        accounted += r.due(11 * S).iter().map(|h| h.held).sum::<u64>();
        assert_eq!(reports, 10);
        assert_eq!(accounted, n as u64);
    }
}

//! One-line explanations of a report's sensors, for tables and status-change lines.

use std::collections::BTreeMap;

use std::path::Path;

use super::{ActionRecord, ConfigSource, HealthConfig, HealthReport, Probe};

impl HealthReport {
    /// The sensors below 1 with their reasons (`all sensors 1.00` when none is).
    pub fn weakest(&self) -> String {
        let weak: Vec<String> = self
            .sensors
            .named()
            .iter()
            .filter(|(_, v)| *v < 1.0)
            .map(|(name, v)| format!("{name} {v:.2}: {}", self.explain(name)))
            .collect();
        if weak.is_empty() {
            "all sensors 1.00".into()
        } else {
            weak.join("; ")
        }
    }

    /// One line on why `sensor` (a name of [`super::Sensors::named`]) has its value.
    pub fn explain(&self, sensor: &str) -> String {
        let d = &self.details;
        match sensor {
            "m1_process" | "m2_heartbeat" => {
                if d.processes.is_empty() {
                    return "no roles configured".into();
                }
                d.processes
                    .iter()
                    .map(|(role, r)| {
                        let age = r
                            .age_seconds
                            .map_or(String::new(), |a| format!(", beat {a:.1} s ago"));
                        match &r.error {
                            Some(e) => format!("{role}: {e}{age}"),
                            None => format!("{role}: pid {}{age}", r.pid.unwrap_or(0)),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            "m3_data_freshness" => {
                if d.feeds.is_empty() {
                    return "no feeds configured".into();
                }
                d.feeds
                    .iter()
                    .map(|(name, f)| match (&f.error, f.age_seconds) {
                        (Some(e), _) => format!("{name} {}: {e}", f.state),
                        (None, Some(age)) => format!("{name} {} ({age:.1} s old)", f.state),
                        (None, None) => format!("{name} {}", f.state),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            "m4_control_plane" => probes(&d.control_plane),
            _ => probes(&d.coherence),
        }
    }
}

fn probes(p: &BTreeMap<String, Probe>) -> String {
    if p.is_empty() {
        return "nothing to check".into();
    }
    p.iter()
        .map(|(name, probe)| match &probe.error {
            None => format!("{name} ok"),
            Some(e) => format!("{name} FAILED: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Says what a check is based on when it is not `health.yaml`: the heartbeat roles found, or
/// that nothing is configured (then the command exits with `nothing_exit`).
pub fn config_note(
    data_dir: &Path,
    config: &HealthConfig,
    source: ConfigSource,
    nothing_exit: u8,
) -> Option<String> {
    match source {
        ConfigSource::File => None,
        ConfigSource::Heartbeats => Some(format!(
            "no {}: checking the heartbeats found under {}: {}",
            data_dir.join(super::CONFIG_FILE).display(),
            super::heartbeat_dir(data_dir).display(),
            config.roles.join(", ")
        )),
        ConfigSource::Nothing => Some(format!(
            "NOTHING CONFIGURED: no {} and no heartbeat files under {}; only the store and the \
             data dir were checked (exit {nothing_exit})",
            data_dir.join(super::CONFIG_FILE).display(),
            super::heartbeat_dir(data_dir).display()
        )),
    }
}

impl HealthReport {
    /// The status line and a table of the sensors with their explanations.
    pub fn text(&self) -> String {
        let mut out = format!(
            "status {}  rm_meta {:.3}  (checked {})\n",
            self.status, self.rm_meta, self.checked_at
        );
        let rows: Vec<Vec<String>> = self
            .sensors
            .named()
            .iter()
            .map(|(name, value)| vec![name.to_string(), format!("{value:.2}"), self.explain(name)])
            .collect();
        out.push_str(&tradeloom_core::table::render(
            &["sensor", "value", "why"],
            &rows,
        ));
        out
    }
}

impl ActionRecord {
    /// `<at>  recovery <action>: <outcome> (<reason>)`.
    pub fn line(&self) -> String {
        format!(
            "{}  recovery {}: {} ({})",
            self.at, self.action, self.outcome, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthConfig, Observations, evaluate};

    #[test]
    fn weakest_names_the_failed_sensor_with_its_reason() {
        let report = evaluate(
            &HealthConfig::default(),
            &Observations {
                control_plane: BTreeMap::from([("store".to_string(), Probe::ok())]),
                coherence: BTreeMap::from([(
                    "store_enums".to_string(),
                    Probe::failed("jobs: 1 rows with status `exploded`"),
                )]),
                ..Observations::default()
            },
            chrono::Utc::now(),
        );
        assert_eq!(report.explain("m4_control_plane"), "store ok");
        assert_eq!(report.explain("m3_data_freshness"), "no feeds configured");
        assert!(
            report.weakest().contains(
                "m5_coherence 0.00: store_enums FAILED: jobs: 1 rows with status `exploded`"
            ),
            "{}",
            report.weakest()
        );
        assert!(!report.weakest().contains("m4_control_plane"));
    }
}

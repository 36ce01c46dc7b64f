//! An instance's backup policy and what it implies: how old its newest
//! successful backup may be before one is overdue. Pure functions; the
//! decoding of `DescribeBackupPolicy` lives with the product.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: u64 = 24 * 3600;

/// Days of the week, Monday first (bit 0) to Sunday (bit 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Weekdays(u8);

const NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

impl Weekdays {
    /// `PreferredBackupPeriod`: names in any case, full or three-letter,
    /// separated by commas (spaces tolerated). An unknown name is an error
    /// rather than a day silently left out (which would make a shorter
    /// interval than the truth, and false pages).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut days = 0u8;
        for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            let bit = NAMES
                .iter()
                .position(|(short, long)| lower == *short || lower == *long)
                .ok_or_else(|| format!("{} is not a weekday", crate::aliyun::json::quoted(word)))?;
            days |= 1 << bit;
        }
        Ok(Weekdays(days))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `days` label: `mon,thu`, in week order.
    pub fn label(self) -> String {
        NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, (short, _))| *short)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The longest gap between two consecutive scheduled days, going round
    /// the week (Thursday to Monday is four days). `None` without any day.
    pub fn max_interval(self) -> Option<Duration> {
        let mut days = (0..7u64).filter(|bit| self.0 & (1 << bit) != 0);
        let first = days.next()?;
        let (mut last, mut longest) = (first, 0);
        for day in days {
            longest = longest.max(day - last);
            last = day;
        }
        // From the last day of the week round to the first of the next.
        longest = longest.max(first + 7 - last);
        Some(Duration::from_secs(longest * DAY))
    }
}

/// `PreferredBackupTime` (`05:00Z-06:00Z`): how long the window lasts. A
/// window that crosses midnight (`23:00Z-01:00Z`) lasts two hours.
pub fn window_length(raw: &str) -> Option<Duration> {
    let (start, end) = raw.trim().split_once('-')?;
    let minutes = |t: &str| -> Option<u64> {
        let t = t.trim().trim_end_matches(['Z', 'z']);
        let (h, m) = t.split_once(':')?;
        let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    let length = if end > start {
        end - start
    } else {
        end + 24 * 60 - start
    };
    Some(Duration::from_secs(length * 60))
}

/// What `DescribeBackupPolicy` says, as far as it could be read; every field
/// may be missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct BackupPolicy {
    pub days: Weekdays,
    /// As the API gives it, bounded in length (it becomes a label).
    pub window: String,
    pub retention_days: Option<u64>,
    pub log_backup_enabled: Option<bool>,
}

/// Distinct policies kept for sharing, at most; past this, policies are
/// no longer shared.
const SHARED_POLICIES: usize = 4096;

impl BackupPolicy {
    /// This policy, shared with every instance that has the same: most of
    /// a fleet has a handful of policies, and 10,000 copies were a
    /// megabyte.
    pub fn shared(self) -> Arc<BackupPolicy> {
        static POLICIES: Mutex<BTreeSet<Arc<BackupPolicy>>> = Mutex::new(BTreeSet::new());
        let mut policies = POLICIES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = policies.get(&self) {
            return shared.clone();
        }
        let policy = Arc::new(self);
        if policies.len() < SHARED_POLICIES {
            policies.insert(policy.clone());
        }
        policy
    }

    /// Longest time between two scheduled backups; `None` when the policy
    /// names no day.
    pub fn max_interval(&self) -> Option<Duration> {
        self.days.max_interval()
    }

    /// Above this age the newest successful backup is overdue: the longest
    /// gap between scheduled days, plus the window (a backup may end as late
    /// as its end), plus `grace` for the backup itself. `None` when the
    /// policy does not say enough (no day, or an unreadable window).
    pub fn expected_max_age(&self, grace: Duration) -> Option<Duration> {
        Some(self.max_interval()? + window_length(&self.window)? + grace)
    }
}

/// Where an instance's expected max age comes from: the `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectationSource {
    Policy,
    /// `--backup.max-age`: the policy is unknown (its call failed, is not
    /// allowed, or it says too little).
    Default,
}

impl ExpectationSource {
    pub fn label(self) -> &'static str {
        match self {
            ExpectationSource::Policy => "policy",
            ExpectationSource::Default => "default",
        }
    }
}

/// The expected max age of an instance with this (maybe unknown) policy.
pub fn expected_max_age(
    policy: Option<&BackupPolicy>,
    grace: Duration,
    default: Duration,
) -> (Duration, ExpectationSource) {
    match policy.and_then(|p| p.expected_max_age(grace)) {
        Some(age) => (age, ExpectationSource::Policy),
        None => (default, ExpectationSource::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    #[test]
    fn max_interval_and_expected_age_follow_the_schedule() {
        let grace = Duration::from_secs(2 * HOUR);
        // (PreferredBackupPeriod, PreferredBackupTime, max interval, expected max age)
        let cases = [
            (
                "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
                "05:00Z-06:00Z",
                DAY,
                DAY + HOUR + 2 * HOUR,
            ),
            // Weekdays only: Friday to Monday is the longest gap.
            (
                "Monday,Tuesday,Wednesday,Thursday,Friday",
                "02:00Z-03:00Z",
                3 * DAY,
                3 * DAY + 3 * HOUR,
            ),
            (
                "Monday,Thursday",
                "05:00Z-06:00Z",
                4 * DAY,
                4 * DAY + 3 * HOUR,
            ),
            // Order and case do not matter.
            (
                "thursday,MONDAY",
                "05:00Z-06:00Z",
                4 * DAY,
                4 * DAY + 3 * HOUR,
            ),
            ("Wednesday", "05:00Z-06:00Z", 7 * DAY, 7 * DAY + 3 * HOUR),
            ("Sunday", "05:00Z-06:00Z", 7 * DAY, 7 * DAY + 3 * HOUR),
            // A window that crosses midnight UTC lasts two hours.
            (
                "Monday,Thursday",
                "23:00Z-01:00Z",
                4 * DAY,
                4 * DAY + 4 * HOUR,
            ),
            (
                "Saturday,Sunday",
                "23:30Z-00:30Z",
                6 * DAY,
                6 * DAY + 3 * HOUR,
            ),
        ];
        for (days, window, interval, expected) in cases {
            let policy = BackupPolicy {
                days: Weekdays::parse(days).unwrap(),
                window: window.into(),
                ..Default::default()
            };
            assert_eq!(
                policy.max_interval(),
                Some(Duration::from_secs(interval)),
                "{days}"
            );
            assert_eq!(
                expected_max_age(Some(&policy), grace, Duration::from_secs(36 * HOUR)),
                (Duration::from_secs(expected), ExpectationSource::Policy),
                "{days} {window}"
            );
        }
    }

    #[test]
    fn weekday_names_in_any_case_and_length() {
        let days = Weekdays::parse(" thu , Mon,MONDAY").unwrap();
        assert_eq!(days.label(), "mon,thu");
        assert_eq!(
            Weekdays::parse("SUNDAY,saturday").unwrap().label(),
            "sat,sun"
        );
        assert!(Weekdays::parse("").unwrap().is_empty());
        assert_eq!(
            Weekdays::parse("Monday,Funday").unwrap_err(),
            "\"Funday\" is not a weekday"
        );
    }

    #[test]
    fn windows_are_read_or_refused() {
        let h = |n: u64| Some(Duration::from_secs(n * HOUR));
        assert_eq!(window_length("05:00Z-06:00Z"), h(1));
        assert_eq!(window_length("23:00Z-01:00Z"), h(2));
        assert_eq!(window_length("00:00Z-24:00Z"), h(24));
        assert_eq!(
            window_length("10:30Z-11:00Z"),
            Some(Duration::from_secs(1800))
        );
        for bad in [
            "",
            "05:00Z",
            "5-6",
            "25:00Z-26:00Z",
            "05:60Z-06:00Z",
            "a:b-c:d",
        ] {
            assert_eq!(window_length(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_unknown_or_empty_policy_falls_back_to_the_default() {
        let grace = Duration::from_secs(2 * HOUR);
        let default = Duration::from_secs(36 * HOUR);
        let no_days = BackupPolicy {
            window: "05:00Z-06:00Z".into(),
            ..Default::default()
        };
        let no_window = BackupPolicy {
            days: Weekdays::parse("Monday").unwrap(),
            ..Default::default()
        };
        for policy in [None, Some(&no_days), Some(&no_window)] {
            assert_eq!(
                expected_max_age(policy, grace, default),
                (default, ExpectationSource::Default)
            );
        }
    }
}

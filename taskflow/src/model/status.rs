use serde::{Deserialize, Serialize};
use std::fmt;

/// The status of a task. Serialises to the reference framework's strings (`"RUNNING"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Created, no step has started yet.
    #[default]
    Initializing,
    /// A step runs or is queued.
    Running,
    /// Every step succeeded (or failed with skip-on-failed). Terminal.
    Success,
    /// A step failed for good, or the callback of a successful task failed. Terminal.
    Failure,
    /// The task deadline passed. Terminal.
    Timeout,
    /// Cancelled by a user. Terminal.
    Revoked,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        Self::Initializing,
        Self::Running,
        Self::Success,
        Self::Failure,
        Self::Timeout,
        Self::Revoked,
    ];

    /// Whether the task has ended (SUCCESS, FAILURE, TIMEOUT or REVOKED).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failure | Self::Timeout | Self::Revoked
        )
    }

    /// The reference string of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "INITIALIZING",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Timeout => "TIMEOUT",
            Self::Revoked => "REVOKED",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown task status `{s}`"))
    }
}

/// The status of a step. Serialises to the reference framework's strings (`"NOTSTARTED"`, ...).
///
/// A step that failed and was skipped (skip-on-failed, or skipped by a user) keeps `FAILURE` and has
/// [`Step::skipped`](crate::Step::skipped) set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StepStatus {
    /// Not started yet (or reset by a retry).
    #[default]
    #[serde(rename = "NOTSTARTED")]
    NotStarted,
    /// Running (or claimed by a worker).
    #[serde(rename = "RUNNING")]
    Running,
    /// Succeeded.
    #[serde(rename = "SUCCESS")]
    Success,
    /// Failed (the latest attempt, when retries remain).
    #[serde(rename = "FAILURE")]
    Failure,
}

impl StepStatus {
    /// The reference string of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NOTSTARTED",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The recorded result of a task's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallbackResult {
    /// The callback returned `Ok`.
    Success,
    /// The callback returned an error (or panicked); see `callbackMessage`.
    Failure,
}

/// Reads `""` (the reference's "no result yet") as `None`.
pub(crate) mod callback_result_serde {
    use super::CallbackResult;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<CallbackResult>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(CallbackResult::Success) => s.serialize_str("SUCCESS"),
            Some(CallbackResult::Failure) => s.serialize_str("FAILURE"),
            None => s.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<CallbackResult>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        match raw.as_deref() {
            None | Some("") => Ok(None),
            Some("SUCCESS") => Ok(Some(CallbackResult::Success)),
            Some("FAILURE") => Ok(Some(CallbackResult::Failure)),
            Some(other) => Err(serde::de::Error::custom(format!(
                "unknown callback result `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialise_to_reference_strings() {
        for status in TaskStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
        }
        assert_eq!(
            serde_json::to_string(&StepStatus::NotStarted).unwrap(),
            "\"NOTSTARTED\""
        );
    }
}

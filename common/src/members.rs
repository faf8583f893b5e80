//! The membership filters of `GET /rooms/{roomId}/members`, which clientapi
//! and syncapi both answer.

use ruma::events::room::member::MembershipState;

use crate::http::MatrixError;

/// Which members a `/members` request asks for.
pub struct MembershipFilter {
    only: Option<String>,
    not: Option<String>,
}

impl MembershipFilter {
    /// A membership the spec does not list is a client's mistake (400), not
    /// a filter that matches nobody.
    pub fn new(
        membership: Option<&MembershipState>,
        not_membership: Option<&MembershipState>,
    ) -> Result<Self, MatrixError> {
        let known = |filter: Option<&MembershipState>, name: &str| match filter.map(|f| f.as_str()) {
            None => Ok(None),
            Some(m @ ("join" | "invite" | "knock" | "leave" | "ban")) => Ok(Some(m.to_owned())),
            Some(other) => Err(MatrixError::invalid_param(format!("{name} cannot be {other:?}"))),
        };
        Ok(Self { only: known(membership, "membership")?, not: known(not_membership, "not_membership")? })
    }

    pub fn wants(&self, membership: &str) -> bool {
        match (&self.only, &self.not) {
            (None, None) => true,
            // Together they mean either condition.
            (only, not) => {
                only.as_deref().is_some_and(|only| only == membership)
                    || not.as_deref().is_some_and(|not| not != membership)
            }
        }
    }
}

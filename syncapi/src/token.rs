//! Sync tokens: `s<events>_<receipts>_<typing>_<account_data>_<to_device>_<presence>_<notifications>`.
//! Positions a token lacks (one from an older version of the server) read as
//! zero, so old tokens keep working; unknown extra positions are ignored.
//! Only the events position can be negative: history fetched from other
//! servers goes below everything else (see `consumers/room_events.rs`).

use crate::storage::Positions;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Token {
    pub positions: Positions,
    pub presence: i64,
}

impl Token {
    pub fn parse(token: &str) -> Option<Token> {
        let mut values = [0i64; 7];
        for (i, (slot, part)) in values.iter_mut().zip(token.strip_prefix('s')?.split('_')).enumerate() {
            *slot = part.parse().ok().filter(|n: &i64| *n >= 0 || i == 0)?;
        }
        let [events, receipts, typing, account_data, to_device, presence, notifications] = values;
        Some(Token {
            positions: Positions { events, receipts, typing, account_data, to_device, notifications },
            presence,
        })
    }
}

impl Token {
    /// A token to stream on from (`/sync`'s `since`, `/events`' `from`):
    /// never a position in backfilled history.
    pub fn parse_since(token: &str) -> Option<Token> {
        Token::parse(token).filter(|t| t.positions.events >= 0)
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.positions;
        write!(
            f,
            "s{}_{}_{}_{}_{}_{}_{}",
            p.events, p.receipts, p.typing, p.account_data, p.to_device, self.presence, p.notifications
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_old_ones_still_parse() {
        let token = Token {
            positions: Positions { events: 7, receipts: 2, typing: 3, account_data: 4, to_device: 5, notifications: 8 },
            presence: 6,
        };
        assert_eq!(Token::parse(&token.to_string()), Some(token));
        let old = Token::parse("s7_2").unwrap();
        assert_eq!(old.positions.events, 7);
        assert_eq!(old.positions.receipts, 2);
        assert_eq!(old.positions.to_device, 0);
        assert_eq!(Token::parse("s7_2_3_4_5_6_8_99").unwrap(), token, "later positions are ignored");
        assert_eq!(Token::parse("garbage"), None);
        assert_eq!(Token::parse("s1_x"), None);
        assert_eq!(Token::parse("s-1").unwrap().positions.events, -1, "backfilled history");
        assert_eq!(Token::parse("s1_-1"), None);
    }
}

//! The client's handshake collation as session variables. Upstream connections are opened
//! with utf8mb4_general_ci; a client that asked for another collation gets it replayed like
//! any `SET NAMES`.

/// The collation every upstream connection is opened with.
pub const UPSTREAM_COLLATION: u8 = 45;

/// (id, character set, collation) of the collations clients commonly ask for at connect.
const KNOWN: &[(u8, &str, &str)] = &[
    (8, "latin1", "latin1_swedish_ci"),
    (33, "utf8mb3", "utf8mb3_general_ci"),
    (45, "utf8mb4", "utf8mb4_general_ci"),
    (46, "utf8mb4", "utf8mb4_bin"),
    (47, "latin1", "latin1_bin"),
    (63, "binary", "binary"),
    (83, "utf8mb3", "utf8mb3_bin"),
    (192, "utf8mb3", "utf8mb3_unicode_ci"),
    (224, "utf8mb4", "utf8mb4_unicode_ci"),
];

/// The variables `SET NAMES` would set for a handshake collation other than the upstream's;
/// `None` for the upstream's own or an unknown id (then the client's `SET NAMES`, which every
/// driver sends after connecting, decides).
pub fn names(collation: u8) -> Option<Vec<(String, String)>> {
    if collation == UPSTREAM_COLLATION {
        return None;
    }
    let &(_, charset, collation) = KNOWN.iter().find(|(id, ..)| *id == collation)?;
    Some(
        [
            ("character_set_client", charset),
            ("character_set_connection", charset),
            ("character_set_results", charset),
            ("collation_connection", collation),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstreams_own_collation_needs_no_replay() {
        assert_eq!(names(UPSTREAM_COLLATION), None);
        assert_eq!(
            names(250),
            None,
            "unknown ids are left to the client's SET NAMES"
        );
    }

    #[test]
    fn another_collation_becomes_set_names_variables() {
        let vars = names(8).unwrap();
        assert!(vars.contains(&("character_set_client".into(), "latin1".into())));
        assert!(vars.contains(&("collation_connection".into(), "latin1_swedish_ci".into())));
    }
}

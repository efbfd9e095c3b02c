//! Why each contact is in its profile: the shortest chain of shared key values from the
//! profile's first contact, read off the merged record's identifiers (each value lists the
//! contacts that carry it). A contact no chain reaches was tied by an earlier setting
//! (merges are permanent), which the merge ledger records.

use std::collections::{BTreeMap, VecDeque};

use crate::field::IdentifierField;
use crate::golden::MergedIdentifier;

/// One hop of a chain: the value shared with the previous contact, and the contact reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The key field of the shared value.
    pub field: IdentifierField,
    /// The shared value.
    pub value: String,
    /// The contact it reaches.
    pub contact: String,
}

/// For each of `members` (in their order): the shortest chain of hops from `root`, empty for
/// `root` itself, `None` when no chain of values that `may_tie` passes reaches it. Ties between
/// equally short chains go to the first value by field then value, so the answer is stable.
pub fn member_chains(
    root: &str,
    members: &[String],
    identifiers: &[MergedIdentifier],
    may_tie: impl Fn(&MergedIdentifier) -> bool,
) -> Vec<Option<Vec<Hop>>> {
    let mut values_of: BTreeMap<&str, Vec<&MergedIdentifier>> = BTreeMap::new();
    for identifier in identifiers.iter().filter(|i| may_tie(i)) {
        for source in &identifier.sources {
            values_of.entry(source).or_default().push(identifier);
        }
    }
    // contact -> (previous contact, the value that tied them)
    let mut reached: BTreeMap<&str, Option<(&str, &MergedIdentifier)>> = BTreeMap::new();
    reached.insert(root, None);
    let mut queue = VecDeque::from([root]);
    while let Some(contact) = queue.pop_front() {
        for identifier in values_of.get(contact).into_iter().flatten() {
            for other in &identifier.sources {
                if !reached.contains_key(other.as_str()) {
                    reached.insert(other, Some((contact, identifier)));
                    queue.push_back(other);
                }
            }
        }
    }
    members
        .iter()
        .map(|member| {
            let mut hops = Vec::new();
            let mut at = member.as_str();
            loop {
                match reached.get(at)? {
                    None => break,
                    Some((previous, identifier)) => {
                        hops.push(Hop {
                            field: identifier.field.clone(),
                            value: identifier.value.clone(),
                            contact: at.to_owned(),
                        });
                        at = previous;
                    }
                }
            }
            hops.reverse();
            Some(hops)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(field: &str, value: &str, sources: &[&str]) -> MergedIdentifier {
        MergedIdentifier {
            field: IdentifierField::parse(field, &[]).unwrap(),
            value: value.into(),
            valid: true,
            is_unify_key: true,
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn each_member_gets_its_shortest_chain_from_the_root() {
        let identifiers = vec![
            id("display_email", "a@x.co", &["2", "3"]),
            id("display_mobile", "+886912345678", &["1", "2"]),
            id("line_uid", "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &["9"]),
        ];
        let members: Vec<String> = ["1", "2", "3", "9"].map(String::from).to_vec();
        let chains = member_chains("1", &members, &identifiers, |i| i.is_unify_key);
        assert_eq!(chains[0], Some(vec![]));
        let to_3 = chains[2].as_ref().unwrap();
        assert_eq!(
            to_3.iter()
                .map(|h| (h.value.as_str(), h.contact.as_str()))
                .collect::<Vec<_>>(),
            vec![("+886912345678", "2"), ("a@x.co", "3")]
        );
        // Contact 9 shares nothing with the others: an earlier setting tied it.
        assert_eq!(chains[3], None);
        // A value the caller does not let tie (an excluded one) breaks the chain.
        let chains = member_chains("1", &members, &identifiers, |i| i.value != "a@x.co");
        assert_eq!(chains[2], None);
    }
}

//! Unification scopes: which contacts may merge with each other.
//!
//! By default every (organization, product) pair is a scope of its own (Scenario 1). Turning
//! cross-product on puts an organization's CAAC and MAAC in one scope (Scenario 2); a partner
//! connection puts several organizations in one scope (Scenario 3). With products joined, LINE
//! contacts only cross products when `line_uid` is a unify key: a LINE contact is identified
//! by its uid, and without it the products' LINE contacts stay apart.

use std::collections::HashMap;
use std::fmt;

use crate::interner::ScopeId;

/// A product of an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    /// The conversational inbox.
    Caac,
    /// The marketing-automation product.
    Maac,
}

impl Product {
    /// The product's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Caac => "caac",
            Self::Maac => "maac",
        }
    }

    /// Parses `caac` or `maac`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "caac" => Some(Self::Caac),
            "maac" => Some(Self::Maac),
            _ => None,
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group of organizations that unify together, and whether products mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeGroup {
    /// The organizations, by id.
    pub organizations: Vec<String>,
    /// Whether CAAC and MAAC contacts unify together.
    pub cross_product: bool,
}

/// An organization listed in two groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlappingScopes(pub String);

impl fmt::Display for OverlappingScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "organization {} is in two unification scopes", self.0)
    }
}

impl std::error::Error for OverlappingScopes {}

/// Assigns a scope id to each contact from its organization, product and channel.
#[derive(Clone, Debug)]
pub struct Scopes {
    group_of: HashMap<String, (usize, bool)>,
    line_uid_is_key: bool,
    ids: HashMap<(ScopeKey, Option<Product>), ScopeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ScopeKey {
    Group(usize),
    Organization(String),
}

impl Scopes {
    /// Scopes from the groups; organizations in no group are scopes of their own.
    pub fn new(groups: &[ScopeGroup], line_uid_is_key: bool) -> Result<Self, OverlappingScopes> {
        let mut group_of = HashMap::new();
        for (i, group) in groups.iter().enumerate() {
            for org in &group.organizations {
                if group_of
                    .insert(org.clone(), (i, group.cross_product))
                    .is_some_and(|(g, _)| g != i)
                {
                    return Err(OverlappingScopes(org.clone()));
                }
            }
        }
        Ok(Self {
            group_of,
            line_uid_is_key,
            ids: HashMap::new(),
        })
    }

    /// The scope of a contact of `organization` in `product`, on a LINE channel or not.
    pub fn scope_of(&mut self, organization: &str, product: Product, is_line: bool) -> ScopeId {
        let (key, cross_product) = match self.group_of.get(organization) {
            Some(&(g, cross)) => (ScopeKey::Group(g), cross),
            None => (ScopeKey::Organization(organization.to_owned()), false),
        };
        let split_product = !cross_product || (is_line && !self.line_uid_is_key);
        let next = self.ids.len() as ScopeId;
        *self
            .ids
            .entry((key, split_product.then_some(product)))
            .or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_apart_unless_cross_product() {
        let mut s = Scopes::new(&[], true).unwrap();
        assert_ne!(
            s.scope_of("o1", Product::Caac, false),
            s.scope_of("o1", Product::Maac, false)
        );
        assert_eq!(
            s.scope_of("o1", Product::Caac, false),
            s.scope_of("o1", Product::Caac, true)
        );
        assert_ne!(
            s.scope_of("o1", Product::Caac, false),
            s.scope_of("o2", Product::Caac, false)
        );
    }

    #[test]
    fn cross_product_joins_products_and_line_needs_the_line_uid_key() {
        let groups = [ScopeGroup {
            organizations: vec!["o1".into()],
            cross_product: true,
        }];
        let mut with_key = Scopes::new(&groups, true).unwrap();
        assert_eq!(
            with_key.scope_of("o1", Product::Caac, true),
            with_key.scope_of("o1", Product::Maac, true)
        );
        let mut without = Scopes::new(&groups, false).unwrap();
        assert_eq!(
            without.scope_of("o1", Product::Caac, false),
            without.scope_of("o1", Product::Maac, false)
        );
        assert_ne!(
            without.scope_of("o1", Product::Caac, true),
            without.scope_of("o1", Product::Maac, true)
        );
    }

    #[test]
    fn partner_groups_join_organizations() {
        let groups = [ScopeGroup {
            organizations: vec!["o1".into(), "o2".into()],
            cross_product: false,
        }];
        let mut s = Scopes::new(&groups, true).unwrap();
        assert_eq!(
            s.scope_of("o1", Product::Caac, false),
            s.scope_of("o2", Product::Caac, false)
        );
        assert_ne!(
            s.scope_of("o1", Product::Caac, false),
            s.scope_of("o3", Product::Caac, false)
        );
        let overlap = [groups[0].clone(), groups[0].clone()];
        assert!(Scopes::new(&overlap[..1], true).is_ok());
        let two = [
            groups[0].clone(),
            ScopeGroup {
                organizations: vec!["o2".into()],
                cross_product: false,
            },
        ];
        assert_eq!(
            Scopes::new(&two, true).unwrap_err(),
            OverlappingScopes("o2".into())
        );
    }
}

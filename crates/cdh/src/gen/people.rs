//! People: the keys and profile fields that a person's contacts draw from.

use rand::RngCore;

use super::Gen;
use super::data::{
    DOMAINS, GIVEN_CJK, GIVEN_LATIN, HK_PREFIXES, SURNAMES, US_AREAS, US_EXCHANGE_FIRST,
};

/// A phone as country code, national significant number and its usual digit groups.
#[derive(Clone, Copy)]
pub(super) struct Phone {
    pub(super) cc: &'static str,
    pub(super) nsn: u64,
    pub(super) len: usize,
    pub(super) groups: &'static [usize],
}

/// One person: the keys and fields its contacts draw from.
pub(super) struct Person {
    pub(super) id: u64,
    pub(super) n_contacts: u32,
    pub(super) uid: u128,
    pub(super) surname: usize,
    /// Index into GIVEN_CJK if `cjk`, else into GIVEN_LATIN.
    pub(super) given: usize,
    pub(super) cjk: bool,
    pub(super) phone: Phone,
    pub(super) email_style: u32,
    pub(super) domain: &'static str,
    pub(super) customer_id: Option<u64>,
    pub(super) connect_id: Option<u64>,
    pub(super) gender: &'static str,
    pub(super) birthday: Option<(u32, u32, u32)>,
}

impl Gen {
    /// Draws person number `id`: its name, keys and profile fields.
    pub(super) fn person(&mut self, id: u64) -> Person {
        let n_contacts = match self.below(100) {
            0..20 => 1,
            20..50 => 2,
            50..80 => 3,
            _ => 4,
        };
        let uid = u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64());
        let cjk = self.per_mille(400);
        let surname = self.below(SURNAMES.len() as u32) as usize;
        let n_given = if cjk {
            GIVEN_CJK.len()
        } else {
            GIVEN_LATIN.len()
        };
        let given = self.below(n_given as u32) as usize;
        let key = self.key;
        // Numbers come from keyed permutations of the person's index, so no two people share
        // a phone, customer id or connect id by accident.
        let perm = |salt: u64, m: u64| permute(id, m, key ^ salt);
        let phone = match self.below(1000) {
            0..845 => {
                // 09[1-8]xxxxxxx: 090 is kept for a store phone, and 099 is missing from
                // older libphonenumber metadata.
                let v = perm(1, 80_000_000);
                Phone {
                    cc: "886",
                    nsn: 900_000_000 + (10_000_000 + v),
                    len: 9,
                    groups: &[3, 3, 3],
                }
            }
            845..900 => {
                // Taipei 02-[3-7]xxx-xxxx; the store phones use 02-2 and 02-8.
                let v = perm(2, 50_000_000);
                Phone {
                    cc: "886",
                    nsn: 230_000_000 + v,
                    len: 9,
                    groups: &[1, 4, 4],
                }
            }
            900..940 => {
                let v = perm(3, 8 * 560 * 10_000);
                let (line, ex, area) = (v % 10_000, v / 10_000 % 560, v / 5_600_000);
                let exchange =
                    US_EXCHANGE_FIRST[(ex / 80) as usize] * 100 + (2 + ex % 80 / 10) * 10 + ex % 10;
                let nsn = US_AREAS[area as usize] * 10_000_000 + exchange * 10_000 + line;
                Phone {
                    cc: "1",
                    nsn,
                    len: 10,
                    groups: &[3, 3, 4],
                }
            }
            940..970 => {
                let v = perm(4, 180_000_000);
                let nsn = [9_000_000_000, 8_000_000_000][(v / 90_000_000) as usize]
                    + 10_000_000
                    + v % 90_000_000;
                Phone {
                    cc: "81",
                    nsn,
                    len: 10,
                    groups: &[2, 4, 4],
                }
            }
            _ => {
                let v = perm(5, 8_000_000);
                let nsn = HK_PREFIXES[(v / 1_000_000) as usize] * 1_000_000 + v % 1_000_000;
                Phone {
                    cc: "852",
                    nsn,
                    len: 8,
                    groups: &[4, 4],
                }
            }
        };
        let email_style = self.below(5);
        let domain = DOMAINS[self.below(DOMAINS.len() as u32) as usize];
        let customer_id = self.per_mille(450).then(|| perm(6, 100_000_000));
        let connect_id = self.per_mille(30).then(|| perm(7, 100_000_000));
        let gender = if self.per_mille(80) {
            "unknown"
        } else if given < n_given / 2 {
            "female"
        } else {
            "male"
        };
        let birthday = self.per_mille(550).then(|| {
            (
                1960 + self.below(48),
                1 + self.below(12),
                1 + self.below(28),
            )
        });
        Person {
            id,
            n_contacts,
            uid,
            surname,
            given,
            cjk,
            phone,
            email_style,
            domain,
            customer_id,
            connect_id,
            gender,
            birthday,
        }
    }
}

/// A keyed bijection on `0..m`: an invertible mix on the enclosing power of two, applied again
/// until the value falls below `m` (cycle walking). Indexes past `m` wrap around.
pub(super) fn permute(x: u64, m: u64, key: u64) -> u64 {
    let bits = 64 - (m - 1).leading_zeros();
    let (mask, half) = ((1u64 << bits) - 1, bits.div_ceil(2));
    let mut v = x % m;
    loop {
        v = ((v ^ (key & mask)).wrapping_mul(0x9E37_79B9_7F4A_7C15)) & mask;
        v ^= v >> half;
        v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9) & mask;
        v ^= v >> half;
        if v < m {
            return v;
        }
    }
}

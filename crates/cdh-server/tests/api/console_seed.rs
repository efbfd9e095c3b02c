//! Realistic data for the console's browser tests: named channels, six customers whose
//! contacts share phones and emails across LINE, Messenger, Instagram and WhatsApp, and
//! walk-in customers who all gave the store's phone.

use serde_json::{Value, json};

use crate::support::{Org, TestApp};

/// The store's landline, given by every walk-in customer (so it is a suspicious value).
pub const STORE_PHONE: &str = "02-2771-8888";

/// The store phone as the hub normalises it (E.164).
pub const STORE_PHONE_E164: &str = "+886227718888";

/// How many walk-in customers gave the store phone (more than the suspicious threshold, 20).
pub const WALK_INS: usize = 22;

/// The organization's channels, by type.
pub struct Channels {
    pub line: String,
    pub messenger: String,
    pub instagram: String,
    pub whatsapp: String,
}

/// A seeded customer: their name and their contacts' ids, oldest first.
pub struct Person {
    pub name: &'static str,
    pub contacts: Vec<String>,
}

/// Creates a named channel and returns its id.
pub async fn channel(app: &TestApp, org: &Org, kind: &str, product: &str, name: &str) -> String {
    app.post(
        "/v1/channels",
        &org.admin,
        json!({"type": kind, "product": product, "name": name,
               "external_account_id": format!("{kind}-{product}-lumen")}),
    )
    .await
    .expect(201)
    .str("id")
}

/// The four CAAC channels of a tea house.
pub async fn channels(app: &TestApp, org: &Org) -> Channels {
    Channels {
        line: channel(app, org, "line", "caac", "Lumen Tea LINE OA").await,
        messenger: channel(app, org, "messenger", "caac", "Lumen Tea Facebook page").await,
        instagram: channel(app, org, "instagram", "caac", "@lumen.tea").await,
        whatsapp: channel(app, org, "whatsapp", "caac", "Lumen Tea WhatsApp").await,
    }
}

/// Six customers, eleven contacts. With phone and email as keys they become six profiles:
/// Chen Yi-chun (LINE + Messenger, by email), Lin Chih-ming (WhatsApp + Instagram, by phone),
/// Wang Mei-ling (LINE + Instagram + Messenger, by email), Huang Kuan-yu (Messenger),
/// Chang Ya-ting (WhatsApp + LINE, by phone) and Liu Chia-hao (LINE).
pub async fn people(app: &TestApp, org: &Org, ch: &Channels) -> Vec<Person> {
    let rows: [(&'static str, &String, &str, Value); 11] = [
        (
            "Chen Yi-chun",
            &ch.line,
            "U4af4980629a1c2b3d4e5f60718293a4b",
            json!({"display_mobile": "+886912345678", "display_email": "yichun.chen@example.com",
                   "line_uid": "U4af4980629a1c2b3d4e5f60718293a4b", "gender": "female",
                   "tags": ["vip", "oolong"]}),
        ),
        (
            "Chen Yi-chun",
            &ch.messenger,
            "6021834459127731",
            json!({"display_email": "yichun.chen@example.com", "birthday": "1991-04-12"}),
        ),
        (
            "Lin Chih-ming",
            &ch.whatsapp,
            "+886922113305",
            json!({"display_mobile": "+886 922 113 305"}),
        ),
        (
            "Lin Chih-ming",
            &ch.instagram,
            "17841400455829361",
            json!({"display_mobile": "0922-113-305", "display_email": "chihming.lin@example.com"}),
        ),
        (
            "Wang Mei-ling",
            &ch.line,
            "U9c3e1f7a2b4d6e8f0a1b2c3d4e5f6a7b",
            json!({"display_mobile": "0933-481-576", "display_email": "meiling.wang@example.com",
                   "line_uid": "U9c3e1f7a2b4d6e8f0a1b2c3d4e5f6a7b", "customer_id": "LM-10482"}),
        ),
        (
            "Wang Mei-ling",
            &ch.instagram,
            "17841400519302287",
            json!({"display_email": "meiling.wang@example.com", "tags": ["matcha"]}),
        ),
        (
            "Wang Mei-ling",
            &ch.messenger,
            "5518203947712268",
            json!({"display_email": "meiling.wang@example.com", "gender": "female"}),
        ),
        (
            "Huang Kuan-yu",
            &ch.messenger,
            "4472910385561204",
            json!({"display_email": "kuanyu.huang@example.com"}),
        ),
        (
            "Chang Ya-ting",
            &ch.whatsapp,
            "+886955208417",
            json!({"display_mobile": "+886955208417", "display_email": "yating.chang@example.com"}),
        ),
        (
            "Chang Ya-ting",
            &ch.line,
            "U7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a",
            json!({"display_mobile": "0955 208 417", "line_uid": "U7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a"}),
        ),
        (
            "Liu Chia-hao",
            &ch.line,
            "U0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
            json!({"display_mobile": "0966 731 502", "line_uid": "U0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"}),
        ),
    ];
    let mut people: Vec<Person> = Vec::new();
    for (name, channel, external_id, mut fields) in rows {
        fields["display_name"] = json!(name);
        let id = app
            .contact(&org.admin, channel, external_id, fields)
            .await
            .expect(200)
            .str("id");
        match people.iter_mut().find(|p| p.name == name) {
            Some(person) => person.contacts.push(id),
            None => people.push(Person {
                name,
                contacts: vec![id],
            }),
        }
    }
    people
}

/// The seeded customer called `name`.
pub fn person<'a>(people: &'a [Person], name: &str) -> &'a Person {
    people
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no seeded person {name}"))
}

/// `WALK_INS` LINE contacts, each a different customer, who all gave the store's phone;
/// returns their ids.
pub async fn walk_ins(app: &TestApp, org: &Org, ch: &Channels) -> Vec<String> {
    let mut ids = Vec::with_capacity(WALK_INS);
    const SURNAMES: [&str; 11] = [
        "Wu", "Tsai", "Yang", "Hsu", "Cheng", "Hsieh", "Kuo", "Hung", "Tseng", "Lai", "Chou",
    ];
    const GIVEN: [&str; 2] = ["Pei-shan", "Chun-hung"];
    for n in 0..WALK_INS {
        let name = format!(
            "{} {}",
            SURNAMES[n % SURNAMES.len()],
            GIVEN[n / SURNAMES.len() % 2]
        );
        let id = app
            .contact(
                &org.admin,
                &ch.line,
                &format!("U{:032x}", 0xa11ce_u128 * 7919 + n as u128),
                json!({"display_name": name, "display_mobile": STORE_PHONE}),
            )
            .await
            .expect(200)
            .str("id");
        ids.push(id);
    }
    ids
}

/// The profile a contact is in now.
pub async fn profile_of(app: &TestApp, org: &Org, contact: &str) -> String {
    app.get(&format!("/v1/contacts/{contact}"), &org.admin)
        .await
        .expect(200)
        .str("profile_id")
}

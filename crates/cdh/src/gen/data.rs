//! The tables the generator draws from: names, domains, channels, number ranges, shared values.

/// Values many unrelated contacts share: store phones and emails that do merge (which a preview
/// should flag), and placeholders and fake phones that the hub blocks. `true` marks a phone.
pub const SHARED_VALUES: [(bool, &str); 25] = [
    (true, "02-2700-1234"),
    (true, "+886 2 2700 1234"),
    (true, "02-2771-8800"),
    (true, "(02)8780-5566"),
    (true, "02 2507 3399"),
    (true, "0900-123-456"),
    (true, "0000000000"),
    (true, "0987654321"),
    (true, "1111111111"),
    (true, "0"),
    (true, "null"),
    (true, "N/A"),
    (true, "NULL"),
    (false, "test@test.com"),
    (false, "noemail@example.com"),
    (false, "na@na.com"),
    (false, "Test@Test.com"),
    (false, "none@none.com"),
    (false, "no@email.com"),
    (false, "service@brandshop.com.tw"),
    (false, "order@brandshop.com.tw"),
    (false, "null"),
    (false, "N/A"),
    (false, "undefined"),
    (false, "none"),
];

/// Romanised surnames (most common in Taiwan) with their characters.
pub(super) const SURNAMES: [(&str, &str); 24] = [
    ("Chen", "陳"),
    ("Lin", "林"),
    ("Huang", "黃"),
    ("Chang", "張"),
    ("Lee", "李"),
    ("Wang", "王"),
    ("Wu", "吳"),
    ("Liu", "劉"),
    ("Tsai", "蔡"),
    ("Yang", "楊"),
    ("Hsu", "許"),
    ("Cheng", "鄭"),
    ("Hsieh", "謝"),
    ("Kuo", "郭"),
    ("Hung", "洪"),
    ("Chiu", "邱"),
    ("Tseng", "曾"),
    ("Liao", "廖"),
    ("Lai", "賴"),
    ("Chou", "周"),
    ("Yeh", "葉"),
    ("Su", "蘇"),
    ("Chuang", "莊"),
    ("Lu", "呂"),
];
/// Latin given names: the first half female, the second male.
pub(super) const GIVEN_LATIN: [&str; 40] = [
    "Alice", "Amy", "Angela", "Annie", "Betty", "Cindy", "Claire", "Daisy", "Emily", "Grace",
    "Irene", "Jenny", "Joanne", "Judy", "Kelly", "Linda", "Maggie", "Nina", "Peggy", "Vivian",
    "Allen", "Andy", "Ben", "Brian", "David", "Eric", "Frank", "Jack", "Jason", "Jerry", "Kevin",
    "Leo", "Michael", "Peter", "Ryan", "Sam", "Steven", "Tony", "Vincent", "Wayne",
];
/// Chinese given names with a romanisation (for emails): the first half female.
pub(super) const GIVEN_CJK: [(&str, &str); 24] = [
    ("淑芬", "Shufen"),
    ("雅婷", "Yating"),
    ("怡君", "Yichun"),
    ("佳穎", "Chiaying"),
    ("欣怡", "Hsinyi"),
    ("美玲", "Meiling"),
    ("思妤", "Szuyu"),
    ("詩涵", "Shihhan"),
    ("宜蓁", "Yichen"),
    ("惠雯", "Huiwen"),
    ("家瑜", "Chiayu"),
    ("筱涵", "Hsiaohan"),
    ("志明", "Chihming"),
    ("家豪", "Chiahao"),
    ("冠宇", "Kuanyu"),
    ("俊傑", "Chunchieh"),
    ("建宏", "Chienhung"),
    ("宗翰", "Tsunghan"),
    ("承恩", "Chengen"),
    ("柏翰", "Pohan"),
    ("彥廷", "Yenting"),
    ("信宏", "Hsinhung"),
    ("文雄", "Wenhsiung"),
    ("志豪", "Chihhao"),
];
pub(super) const DOMAINS: [&str; 10] = [
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "yahoo.com.tw",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "msa.hinet.net",
    "kimo.com",
    "proton.me",
];
/// Channel, weight (per mille) and how often a contact of it has (line_uid, phone, email).
pub(super) const CHANNELS: [(&str, u32, [u32; 3]); 7] = [
    ("line", 340, [1000, 550, 350]),
    ("messenger", 160, [0, 350, 550]),
    ("instagram", 100, [0, 250, 450]),
    ("whatsapp", 80, [0, 1000, 250]),
    ("sms", 120, [0, 1000, 150]),
    ("email", 120, [0, 300, 1000]),
    ("webchat", 80, [0, 400, 750]),
];
/// US area codes that libphonenumber knows (exchanges are drawn from 2-9 with no 555 or N11).
pub(super) const US_AREAS: [u64; 8] = [415, 212, 646, 312, 617, 206, 310, 718];
/// First digits of US exchanges: 2-9 less 5, so no 555 numbers.
pub(super) const US_EXCHANGE_FIRST: [u64; 7] = [2, 3, 4, 6, 7, 8, 9];
/// Hong Kong mobile prefixes, all of whose numbers libphonenumber accepts.
pub(super) const HK_PREFIXES: [u64; 8] = [94, 96, 97, 61, 63, 64, 65, 69];
/// 2023-06-01T00:00:00Z: `updated_at` falls in the two years from here.
pub(super) const UPDATED_FROM: u64 = 1_685_577_600;
/// Two years, in seconds.
pub(super) const UPDATED_SPAN: u32 = 2 * 365 * 86_400;
/// Bytes gathered before each write to the output, so an unbuffered writer is fine too.
pub(super) const FLUSH_AT: usize = 1 << 20;

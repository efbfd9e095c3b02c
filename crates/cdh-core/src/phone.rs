//! Phone numbers: parsing to E.164 with the phonenumber crate (a fast path is on its way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region(phonenumber::country::Id);
#[derive(Debug)]
pub struct UnknownRegion(pub String);
impl Region {
    pub fn parse(code: &str) -> Result<Region, UnknownRegion> {
        code.parse()
            .map(Region)
            .map_err(|_| UnknownRegion(code.into()))
    }
    pub fn code(&self) -> String {
        self.0.as_ref().to_owned()
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Phone(u64);
impl Phone {
    pub fn digits(&self) -> u64 {
        self.0
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    NotANumber,
    Invalid,
}
pub fn parse(raw: &str, region: Region) -> Result<Phone, PhoneError> {
    let n = phonenumber::parse(Some(region.0), raw).map_err(|_| PhoneError::NotANumber)?;
    if !n.is_valid() {
        return Err(PhoneError::Invalid);
    }
    let s = n.format().mode(phonenumber::Mode::E164).to_string();
    Ok(Phone(s[1..].parse().unwrap()))
}
#[derive(Debug, Clone)]
pub struct PhoneNormalizer(Region);
impl PhoneNormalizer {
    pub fn new(r: Region) -> Self {
        Self(r)
    }
    pub fn region(&self) -> Region {
        self.0
    }
    pub fn normalize(&mut self, raw: &str) -> Result<Phone, PhoneError> {
        parse(raw, self.0)
    }
}

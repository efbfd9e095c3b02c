//! Synthetic contact files (placeholder until the generator lands).

/// Options.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Contacts.
    pub n_contacts: u64,
    /// Seed.
    pub seed: u64,
    /// Shared values.
    pub shared_values: bool,
    /// Region.
    pub region: &'static str,
}

/// Stats.
#[derive(Debug, Clone)]
pub struct GenStats {
    /// Contacts.
    pub n_contacts: u64,
    /// People.
    pub n_people: u64,
    /// Shared.
    pub n_shared_value_contacts: u64,
}

/// Generates.
pub fn generate<W: std::io::Write>(opts: &GenOptions, mut out: W) -> std::io::Result<GenStats> {
    writeln!(
        out,
        "contact_id,channel,line_uid,display_mobile,display_email,customer_id,connect_id,display_name,gender,birthday,updated_at"
    )?;
    for i in 0..opts.n_contacts {
        let p = i / 2;
        writeln!(
            out,
            "c{i},line,U{:032x},09{:08},u{p}@x.com,,,N{p},,,2025-01-01T00:00:00Z",
            p,
            12345678 + p * 7 % 99999999
        )?;
    }
    Ok(GenStats {
        n_contacts: opts.n_contacts,
        n_people: opts.n_contacts / 2,
        n_shared_value_contacts: 0,
    })
}

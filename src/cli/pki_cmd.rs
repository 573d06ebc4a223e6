//! `canopy pki`: the deployment CA, server certificates and fingerprints.

use std::path::PathBuf;

use clap::Subcommand;

use crate::model::Fingerprint;
use crate::net::pki;

#[derive(Subcommand, Debug)]
pub(super) enum PkiCommand {
    /// Create the deployment CA (ca.pem, ca.key) in DIR.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        #[arg(long, default_value = "Canopy deployment CA")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a server certificate (NAME.pem, NAME.key) signed by the CA in DIR.
    Issue {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The server's node name, as in its config's `name`.
        #[arg(long)]
        name: String,
        /// Extra subject alternative names: IP addresses or DNS names.
        #[arg(long = "san")]
        sans: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Print the SHA-256 fingerprint of a certificate, for a child's `[parent]` section.
    Fingerprint { cert: PathBuf },
}

pub(super) fn pki_command(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init { dir, name, days } => {
            let paths = pki::init_ca(&dir, &name, days)?;
            println!(
                "created the deployment CA: {} (key {}, mode 0600)",
                paths.cert.display(),
                paths.key.display()
            );
        }
        PkiCommand::Issue {
            dir,
            name,
            sans,
            days,
        } => {
            let issued = pki::issue_server(&dir, &name, &sans, days)?;
            println!(
                "issued {} (key {}, mode 0600)",
                issued.cert.display(),
                issued.key.display()
            );
            println!("fingerprint {}", issued.fingerprint);
        }
        PkiCommand::Fingerprint { cert } => {
            let certs = pki::load_certs(&cert)?;
            println!("{}", Fingerprint::of(&certs[0]));
        }
    }
    Ok(())
}

//! The geo seam: a MaxMind City database (GeoLite2 or GeoIP2), or none.
//!
//! A missing or broken database never stops the service: geo becomes "unknown" and `/health`
//! says why.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use maxminddb::{Reader, geoip2};
use serde::Serialize;

/// Where a visitor is, as far as the database knows. The IP itself is never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    pub city: Option<String>,
    /// ISO 3166-2 subdivision code (e.g. `ENG`, `WA`).
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoStatus {
    Disabled,
    Ready { database_type: String },
    Broken { reason: String },
}

pub struct Geo {
    reader: Option<Reader<Vec<u8>>>,
    status: GeoStatus,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo").field("status", &self.status).finish()
    }
}

impl Geo {
    pub fn disabled() -> Self {
        Self {
            reader: None,
            status: GeoStatus::Disabled,
        }
    }

    /// Opens a City database and probes it once, so a corrupt file is found at start, not
    /// on a visitor's request.
    pub fn open(path: &Path) -> Self {
        let reader = match Reader::open_readfile(path) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("cannot open {}: {e}", path.display());
                tracing::error!(%reason, "geo database unusable; serving without geo");
                return Self {
                    reader: None,
                    status: GeoStatus::Broken { reason },
                };
            }
        };
        let database_type = reader.metadata().database_type.clone();
        if !database_type.contains("City") {
            let reason = format!(
                "{} is a {database_type} database, not a City one",
                path.display()
            );
            tracing::error!(%reason, "geo database unusable; serving without geo");
            return Self {
                reader: None,
                status: GeoStatus::Broken { reason },
            };
        }
        // Decoding a record exercises the data section, where corruption shows.
        if let Err(reason) = probe(&reader) {
            let reason = format!("{} is corrupt: {reason}", path.display());
            tracing::error!(%reason, "geo database unusable; serving without geo");
            return Self {
                reader: None,
                status: GeoStatus::Broken { reason },
            };
        }
        tracing::info!(path = %path.display(), %database_type, "geo database loaded");
        Self {
            reader: Some(reader),
            status: GeoStatus::Ready { database_type },
        }
    }

    pub fn status(&self) -> &GeoStatus {
        &self.status
    }

    /// The visitor's city, region and country; `None` when unknown (no database, address not in
    /// it, or a private address). Never an error: geo is a nicety, not a reason to fail a visit.
    pub fn locate(&self, ip: IpAddr) -> Option<Location> {
        let reader = self.reader.as_ref()?;
        let city: geoip2::City<'_> = reader.lookup(ip).ok()?.decode().ok()??;
        let location = Location {
            city: city.city.names.english.map(str::to_owned),
            region: city
                .subdivisions
                .first()
                .and_then(|s| s.iso_code)
                .map(str::to_owned),
            country: city.country.iso_code.map(str::to_owned),
        };
        (location != Location::default()).then_some(location)
    }
}

/// Decodes records for a few addresses spread over the address space.
fn probe(reader: &Reader<Vec<u8>>) -> Result<(), String> {
    let probes = [
        IpAddr::V4(Ipv4Addr::new(81, 2, 69, 142)),
        IpAddr::V4(Ipv4Addr::new(89, 160, 20, 112)),
        IpAddr::V4(Ipv4Addr::new(216, 160, 83, 56)),
        IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    ];
    for ip in probes {
        let result = reader.lookup(ip).map_err(|e| e.to_string())?;
        result
            .decode::<geoip2::City<'_>>()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/geoip")
            .join(name)
    }

    fn loc(city: &str, region: &str, country: &str) -> Option<Location> {
        Some(Location {
            city: Some(city.into()),
            region: Some(region.into()),
            country: Some(country.into()),
        })
    }

    #[test]
    fn cities_from_the_free_and_commercial_schemas() {
        for file in ["GeoLite2-City-Test.mmdb", "GeoIP2-City-Test.mmdb"] {
            let geo = Geo::open(&db(file));
            assert!(matches!(geo.status(), GeoStatus::Ready { .. }), "{file}");
            let at = |ip: &str| geo.locate(ip.parse().unwrap());
            assert_eq!(at("81.2.69.142"), loc("London", "ENG", "GB"), "{file}");
            assert_eq!(
                at("81.2.69.150"),
                loc("London", "ENG", "GB"),
                "{file}: in the /28"
            );
            assert_eq!(at("89.160.20.112"), loc("Linköping", "E", "SE"), "{file}");
            assert_eq!(at("216.160.83.56"), loc("Milton", "WA", "US"), "{file}");
            assert_eq!(at("2.125.160.216"), loc("Boxford", "ENG", "GB"), "{file}");
            for unknown in ["127.0.0.1", "10.0.0.1", "1.1.1.1", "::1"] {
                assert_eq!(
                    at(unknown),
                    None,
                    "{file}: {unknown} is city unknown, not an error"
                );
            }
        }
        // Only the commercial database knows these.
        let geo = Geo::open(&db("GeoIP2-City-Test.mmdb"));
        assert_eq!(
            geo.locate("214.78.120.1".parse().unwrap()),
            loc("San Diego", "CA", "US")
        );
        assert_eq!(
            geo.locate("2001:480:10::1".parse().unwrap()),
            loc("San Diego", "CA", "US")
        );
    }

    #[test]
    fn a_broken_or_missing_database_means_no_geo_not_a_failure() {
        for file in ["GeoIP2-City-Test-Broken-Double-Format.mmdb", "nope.mmdb"] {
            let geo = Geo::open(&db(file));
            assert!(matches!(geo.status(), GeoStatus::Broken { .. }), "{file}");
            assert_eq!(geo.locate("81.2.69.142".parse().unwrap()), None);
        }
        assert_eq!(Geo::disabled().locate("81.2.69.142".parse().unwrap()), None);
    }
}

//! The 93 controls of ISO/IEC 27001:2022 Annex A (identifiers, titles, themes), the list a
//! Statement of Applicability must cover (clause 6.1.3 d). Annexa implements some of them (the
//! [catalogue](crate::policy::CATALOGUE)); the others are the organisation's to decide.

use crate::policy::{CATALOGUE, Control, Theme};
use serde::Serialize;

/// One Annex A control as the standard lists it.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnexControl {
    pub id: &'static str,
    pub title: &'static str,
    pub theme: Theme,
}

impl AnnexControl {
    /// The catalogue entry when Annexa implements this control.
    pub fn implemented(&self) -> Option<&'static Control> {
        CATALOGUE.iter().find(|c| c.id == self.id)
    }
}

const fn annex(id: &'static str, title: &'static str, theme: Theme) -> AnnexControl {
    AnnexControl { id, title, theme }
}

use Theme::{Organizational, People, Physical, Technological};

/// Every Annex A control, in the standard's order: 37 organisational (A.5), 8 people (A.6),
/// 14 physical (A.7) and 34 technological (A.8).
pub const ANNEX_A: [AnnexControl; 93] = [
    annex("A.5.1", "Policies for information security", Organizational),
    annex(
        "A.5.2",
        "Information security roles and responsibilities",
        Organizational,
    ),
    annex("A.5.3", "Segregation of duties", Organizational),
    annex("A.5.4", "Management responsibilities", Organizational),
    annex("A.5.5", "Contact with authorities", Organizational),
    annex(
        "A.5.6",
        "Contact with special interest groups",
        Organizational,
    ),
    annex("A.5.7", "Threat intelligence", Organizational),
    annex(
        "A.5.8",
        "Information security in project management",
        Organizational,
    ),
    annex(
        "A.5.9",
        "Inventory of information and other associated assets",
        Organizational,
    ),
    annex(
        "A.5.10",
        "Acceptable use of information and other associated assets",
        Organizational,
    ),
    annex("A.5.11", "Return of assets", Organizational),
    annex("A.5.12", "Classification of information", Organizational),
    annex("A.5.13", "Labelling of information", Organizational),
    annex("A.5.14", "Information transfer", Organizational),
    annex("A.5.15", "Access control", Organizational),
    annex("A.5.16", "Identity management", Organizational),
    annex("A.5.17", "Authentication information", Organizational),
    annex("A.5.18", "Access rights", Organizational),
    annex(
        "A.5.19",
        "Information security in supplier relationships",
        Organizational,
    ),
    annex(
        "A.5.20",
        "Addressing information security within supplier agreements",
        Organizational,
    ),
    annex(
        "A.5.21",
        "Managing information security in the information and communication technology (ICT) supply chain",
        Organizational,
    ),
    annex(
        "A.5.22",
        "Monitoring, review and change management of supplier services",
        Organizational,
    ),
    annex(
        "A.5.23",
        "Information security for use of cloud services",
        Organizational,
    ),
    annex(
        "A.5.24",
        "Information security incident management planning and preparation",
        Organizational,
    ),
    annex(
        "A.5.25",
        "Assessment and decision on information security events",
        Organizational,
    ),
    annex(
        "A.5.26",
        "Response to information security incidents",
        Organizational,
    ),
    annex(
        "A.5.27",
        "Learning from information security incidents",
        Organizational,
    ),
    annex("A.5.28", "Collection of evidence", Organizational),
    annex(
        "A.5.29",
        "Information security during disruption",
        Organizational,
    ),
    annex(
        "A.5.30",
        "ICT readiness for business continuity",
        Organizational,
    ),
    annex(
        "A.5.31",
        "Legal, statutory, regulatory and contractual requirements",
        Organizational,
    ),
    annex("A.5.32", "Intellectual property rights", Organizational),
    annex("A.5.33", "Protection of records", Organizational),
    annex(
        "A.5.34",
        "Privacy and protection of personal identifiable information (PII)",
        Organizational,
    ),
    annex(
        "A.5.35",
        "Independent review of information security",
        Organizational,
    ),
    annex(
        "A.5.36",
        "Compliance with policies, rules and standards for information security",
        Organizational,
    ),
    annex("A.5.37", "Documented operating procedures", Organizational),
    annex("A.6.1", "Screening", People),
    annex("A.6.2", "Terms and conditions of employment", People),
    annex(
        "A.6.3",
        "Information security awareness, education and training",
        People,
    ),
    annex("A.6.4", "Disciplinary process", People),
    annex(
        "A.6.5",
        "Responsibilities after termination or change of employment",
        People,
    ),
    annex(
        "A.6.6",
        "Confidentiality or non-disclosure agreements",
        People,
    ),
    annex("A.6.7", "Remote working", People),
    annex("A.6.8", "Information security event reporting", People),
    annex("A.7.1", "Physical security perimeters", Physical),
    annex("A.7.2", "Physical entry", Physical),
    annex("A.7.3", "Securing offices, rooms and facilities", Physical),
    annex("A.7.4", "Physical security monitoring", Physical),
    annex(
        "A.7.5",
        "Protecting against physical and environmental threats",
        Physical,
    ),
    annex("A.7.6", "Working in secure areas", Physical),
    annex("A.7.7", "Clear desk and clear screen", Physical),
    annex("A.7.8", "Equipment siting and protection", Physical),
    annex("A.7.9", "Security of assets off-premises", Physical),
    annex("A.7.10", "Storage media", Physical),
    annex("A.7.11", "Supporting utilities", Physical),
    annex("A.7.12", "Cabling security", Physical),
    annex("A.7.13", "Equipment maintenance", Physical),
    annex("A.7.14", "Secure disposal or re-use of equipment", Physical),
    annex("A.8.1", "User endpoint devices", Technological),
    annex("A.8.2", "Privileged access rights", Technological),
    annex("A.8.3", "Information access restriction", Technological),
    annex("A.8.4", "Access to source code", Technological),
    annex("A.8.5", "Secure authentication", Technological),
    annex("A.8.6", "Capacity management", Technological),
    annex("A.8.7", "Protection against malware", Technological),
    annex(
        "A.8.8",
        "Management of technical vulnerabilities",
        Technological,
    ),
    annex("A.8.9", "Configuration management", Technological),
    annex("A.8.10", "Information deletion", Technological),
    annex("A.8.11", "Data masking", Technological),
    annex("A.8.12", "Data leakage prevention", Technological),
    annex("A.8.13", "Information backup", Technological),
    annex(
        "A.8.14",
        "Redundancy of information processing facilities",
        Technological,
    ),
    annex("A.8.15", "Logging", Technological),
    annex("A.8.16", "Monitoring activities", Technological),
    annex("A.8.17", "Clock synchronization", Technological),
    annex(
        "A.8.18",
        "Use of privileged utility programs",
        Technological,
    ),
    annex(
        "A.8.19",
        "Installation of software on operational systems",
        Technological,
    ),
    annex("A.8.20", "Networks security", Technological),
    annex("A.8.21", "Security of network services", Technological),
    annex("A.8.22", "Segregation of networks", Technological),
    annex("A.8.23", "Web filtering", Technological),
    annex("A.8.24", "Use of cryptography", Technological),
    annex("A.8.25", "Secure development life cycle", Technological),
    annex("A.8.26", "Application security requirements", Technological),
    annex(
        "A.8.27",
        "Secure system architecture and engineering principles",
        Technological,
    ),
    annex("A.8.28", "Secure coding", Technological),
    annex(
        "A.8.29",
        "Security testing in development and acceptance",
        Technological,
    ),
    annex("A.8.30", "Outsourced development", Technological),
    annex(
        "A.8.31",
        "Separation of development, test and production environments",
        Technological,
    ),
    annex("A.8.32", "Change management", Technological),
    annex("A.8.33", "Test information", Technological),
    annex(
        "A.8.34",
        "Protection of information systems during audit testing",
        Technological,
    ),
];

/// Looks an Annex A control up by its identifier (`A.7.4`).
pub fn annex_control(id: &str) -> Option<&'static AnnexControl> {
    ANNEX_A.iter().find(|c| c.id == id)
}

/// The theme's name as the standard writes it (`Organizational controls`).
pub fn theme_name(theme: Theme) -> &'static str {
    match theme {
        Organizational => "Organizational controls",
        People => "People controls",
        Physical => "Physical controls",
        Technological => "Technological controls",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_a_has_93_controls_in_four_themes_numbered_without_gaps() {
        for (theme, section, count) in [
            (Organizational, 5, 37),
            (People, 6, 8),
            (Physical, 7, 14),
            (Technological, 8, 34),
        ] {
            let ids: Vec<&str> = ANNEX_A
                .iter()
                .filter(|c| c.theme == theme)
                .map(|c| c.id)
                .collect();
            let expected: Vec<String> = (1..=count).map(|n| format!("A.{section}.{n}")).collect();
            assert_eq!(ids, expected, "{theme:?}");
        }
        assert_eq!(ANNEX_A.len(), 93);
    }

    #[test]
    fn every_control_annexa_implements_is_in_annex_a_with_the_same_title_and_theme() {
        for c in CATALOGUE {
            let annex = annex_control(c.id).unwrap_or_else(|| panic!("{} not in Annex A", c.id));
            assert_eq!((annex.title, annex.theme), (c.title, c.theme), "{}", c.id);
            assert!(annex.implemented().is_some());
        }
        assert_eq!(
            ANNEX_A.iter().filter(|c| c.implemented().is_some()).count(),
            CATALOGUE.len()
        );
    }
}

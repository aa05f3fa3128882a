//! The provisioning file: JSON lines of `{"user_id","token","project_id",
//! "feedback_id"}`, as `vridge-realtime provision` writes them (any server
//! that speaks the protocol can be driven from such a file). Lines are
//! grouped by project, in file order, and a run picks the projects and
//! members it needs from them.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One provisioned user: who they are, the token to connect with, and the
/// project (and one of its feedback items) they are a member of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: i64,
    pub token: String,
    pub project_id: i64,
    pub feedback_id: i64,
}

/// The members of one project, in file order (the first one sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub project_id: i64,
    pub feedback_id: i64,
    pub members: Vec<Member>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("reading the provisioning file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
    #[error(
        "the provisioning file has {have} projects with at least {members} members; {want} are needed"
    )]
    TooFew {
        have: usize,
        want: usize,
        members: usize,
    },
}

/// Reads every line (blank lines are skipped).
pub fn parse<R: BufRead>(reader: R) -> Result<Vec<Member>, ProvisioningError> {
    let mut members = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let member = serde_json::from_str(&line).map_err(|source| ProvisioningError::Line {
            line: i + 1,
            source,
        })?;
        members.push(member);
    }
    Ok(members)
}

/// Reads a provisioning file.
pub fn read(path: &Path) -> Result<Vec<Member>, ProvisioningError> {
    let file = std::fs::File::open(path)?;
    parse(std::io::BufReader::new(file))
}

/// Groups members by project, keeping the order in which projects first
/// appear and the order of members within each.
pub fn by_project(members: Vec<Member>) -> Vec<Project> {
    let mut index = std::collections::HashMap::new();
    let mut projects: Vec<Project> = Vec::new();
    for m in members {
        let i = *index.entry(m.project_id).or_insert_with(|| {
            projects.push(Project {
                project_id: m.project_id,
                feedback_id: m.feedback_id,
                members: Vec::new(),
            });
            projects.len() - 1
        });
        projects[i].members.push(m);
    }
    projects
}

/// Which slice of the projects this process drives: `index` of `count`
/// (`--shard 1/4`), so several load-generator processes can share one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s.split_once('/').ok_or("expected INDEX/COUNT, e.g. 0/4")?;
        let index: usize = i.trim().parse().map_err(|_| "bad shard index")?;
        let count: usize = n.trim().parse().map_err(|_| "bad shard count")?;
        if count == 0 || index >= count {
            return Err("the shard index must be below the count".into());
        }
        Ok(Shard { index, count })
    }
}

/// Picks `projects` projects (of this shard) with at least `members`
/// members each, trimmed to exactly `members` (0 = keep every member).
pub fn select(
    all: Vec<Project>,
    projects: usize,
    members: usize,
    shard: Option<Shard>,
) -> Result<Vec<Project>, ProvisioningError> {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    let fit: Vec<Project> = all
        .into_iter()
        .filter(|p| p.members.len() >= members.max(1))
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index)
        .map(|(_, p)| p)
        .collect();
    if fit.len() < projects {
        return Err(ProvisioningError::TooFew {
            have: fit.len(),
            want: projects,
            members,
        });
    }
    Ok(fit
        .into_iter()
        .take(projects)
        .map(|mut p| {
            if members > 0 {
                p.members.truncate(members);
            }
            p
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(user: i64, project: i64) -> String {
        format!(
            r#"{{"user_id":{user},"token":"t{user}","project_id":{project},"feedback_id":{}}}"#,
            project * 10
        )
    }

    #[test]
    fn groups_by_project_in_file_order_and_selects_shards() {
        let text = [
            line(1, 7),
            line(2, 5),
            line(3, 7),
            String::new(),
            line(4, 5),
            line(5, 9),
        ]
        .join("\n");
        let members = parse(text.as_bytes()).unwrap();
        assert_eq!(members.len(), 5);
        let projects = by_project(members);
        let ids: Vec<i64> = projects.iter().map(|p| p.project_id).collect();
        assert_eq!(ids, vec![7, 5, 9]);
        assert_eq!(projects[0].members[1].user_id, 3);
        assert_eq!(projects[0].feedback_id, 70);

        let two = select(projects.clone(), 2, 2, None).unwrap();
        assert_eq!(
            two.iter().map(|p| p.project_id).collect::<Vec<_>>(),
            vec![7, 5]
        );
        let second: Vec<i64> = select(projects.clone(), 1, 2, Some("1/2".parse().unwrap()))
            .unwrap()
            .iter()
            .map(|p| p.project_id)
            .collect();
        assert_eq!(second, vec![5]);
        let err = select(projects, 3, 2, None).unwrap_err();
        assert!(
            matches!(
                err,
                ProvisioningError::TooFew {
                    have: 2,
                    want: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let text = format!("{}\n{{\"user_id\":1}}\n", line(1, 1));
        match parse(text.as_bytes()) {
            Err(ProvisioningError::Line { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!("2/2".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}

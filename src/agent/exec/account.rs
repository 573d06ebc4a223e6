//! The local account a task runs under: its password checked with PAM, then its user, group
//! and supplementary groups looked up (NSS), for the program the task starts.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::pam::{self, PamError};

/// The PAM service the agent checks passwords with: `/etc/pam.d/canopy`, or PAM's `other`
/// where that file does not exist.
pub const PAM_SERVICE: &str = "canopy";

/// An account whose password PAM accepted, as a program runs under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Every group of the account, its primary group among them.
    pub groups: Vec<libc::gid_t>,
    pub home: PathBuf,
}

/// Checks `password` for `name` and looks the account up; the error is the run's outcome
/// description. Blocking (PAM may take seconds on a wrong password).
pub fn authenticate(name: &str, password: &str) -> Result<RunAs, String> {
    pam::authenticate(PAM_SERVICE, name, password).map_err(|e| e.to_string())?;
    let run_as = look_up(name)?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && euid != run_as.uid {
        return Err(format!(
            "the agent runs as user id {euid}, not as root, and cannot start programs as \
             {name:?}"
        ));
    }
    Ok(run_as)
}

/// The account `name` as NSS knows it.
fn look_up(name: &str) -> Result<RunAs, String> {
    let unknown = || PamError::UnknownAccount(name.to_string()).to_string();
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (null pointers and zero ids).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the buffer outlives every pointer getpwnam_r stores in `entry`.
    let status = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 {
        return Err(format!(
            "cannot look up the account {name:?}: {}",
            std::io::Error::from_raw_os_error(status)
        ));
    }
    if found.is_null() {
        return Err(unknown());
    }
    let home = if entry.pw_dir.is_null() {
        PathBuf::from("/")
    } else {
        // SAFETY: a NUL-terminated string in `buffer`.
        let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
        PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
    };
    Ok(RunAs {
        name: name.to_string(),
        uid: entry.pw_uid,
        gid: entry.pw_gid,
        groups: groups_of(&c_name, entry.pw_gid),
        home,
    })
}

/// The groups of the account, its primary group first.
fn groups_of(name: &CStr, primary: libc::gid_t) -> Vec<libc::gid_t> {
    let mut count: libc::c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(count).unwrap_or(64)];
        let asked = count;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most that many and
        // says how many there are.
        let found =
            unsafe { libc::getgrouplist(name.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if found >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            return groups;
        }
        if count <= asked || count > 65_536 {
            // Not told how many: the primary group alone.
            return vec![primary];
        }
    }
}

/// What the program's process does after the fork, before it runs the program: takes the
/// account's groups, group and user, in that order (the user last: after it, the others
/// cannot be changed). Nothing to do when the agent already runs as the account.
pub fn switch_to(run_as: &RunAs) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let (uid, gid, groups) = (run_as.uid, run_as.gid, run_as.groups.clone());
    move || {
        // SAFETY: async-signal-safe calls on memory prepared before the fork.
        unsafe {
            if libc::geteuid() == uid {
                return Ok(());
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_groups() {
        let root = look_up("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{:?}", root.groups);
    }

    #[test]
    fn an_unknown_account_says_so() {
        assert_eq!(
            look_up("canopy-no-such-account").unwrap_err(),
            "the account \"canopy-no-such-account\" does not exist on this device"
        );
    }
}

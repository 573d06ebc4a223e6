//! Checks an account's password with PAM, the device's own authentication.
//!
//! libpam is loaded when first needed (`dlopen`) rather than linked: the binary then builds
//! without PAM's development files and runs where PAM is absent (a run under a specified
//! account then fails saying so). Its functions are looked up in the process's global scope,
//! so a PAM test wrapper preloaded into the agent (`LD_PRELOAD=libpam_wrapper.so`) takes
//! effect as it would for a linked program.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

const PAM_SUCCESS: c_int = 0;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_AUTHTOK_EXPIRED: c_int = 27;
const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type Conversation = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Conversation,
    appdata_ptr: *mut c_void,
}

type PamStart =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type PamStep = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type PamStrerror = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

/// libpam's entry points.
struct Pam {
    start: PamStart,
    authenticate: PamStep,
    acct_mgmt: PamStep,
    end: PamStep,
    strerror: PamStrerror,
}

/// Why PAM did not accept an account.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PamError {
    /// A wrong, expired or locked password, or one that must be changed first.
    #[error("the account's password is not valid")]
    PasswordNotValid,
    #[error("the account {0:?} does not exist on this device")]
    UnknownAccount(String),
    #[error("cannot check the account's password: {0}")]
    Unavailable(String),
}

/// libpam, loaded once.
fn pam() -> Result<&'static Pam, PamError> {
    static PAM: OnceLock<Result<Pam, String>> = OnceLock::new();
    PAM.get_or_init(load)
        .as_ref()
        .map_err(|e| PamError::Unavailable(e.clone()))
}

fn load() -> Result<Pam, String> {
    // SAFETY: dlopen and dlsym are given NUL-terminated names; each symbol found is libpam's
    // function of that name, whose C signature the type it is cast to repeats.
    unsafe {
        let handle = libc::dlopen(c"libpam.so.0".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            return Err(format!(
                "PAM is not available on this device ({})",
                dl_error()
            ));
        }
        let symbol = |name: &CStr| {
            // The global scope: a preloaded wrapper's function comes before libpam's.
            let found = libc::dlsym(std::ptr::null_mut(), name.as_ptr());
            if found.is_null() {
                Err(format!("libpam has no {}", name.to_string_lossy()))
            } else {
                Ok(found)
            }
        };
        Ok(Pam {
            start: std::mem::transmute::<*mut c_void, PamStart>(symbol(c"pam_start")?),
            authenticate: std::mem::transmute::<*mut c_void, PamStep>(symbol(c"pam_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, PamStep>(symbol(c"pam_acct_mgmt")?),
            end: std::mem::transmute::<*mut c_void, PamStep>(symbol(c"pam_end")?),
            strerror: std::mem::transmute::<*mut c_void, PamStrerror>(symbol(c"pam_strerror")?),
        })
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    unsafe {
        let message = libc::dlerror();
        if message.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    }
}

/// Answers PAM's prompts with the password (the one thing it may ask for here); messages it
/// only shows get no answer.
unsafe extern "C" fn converse(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    password: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(count) else {
        return PAM_BUF_ERR;
    };
    if n == 0 || messages.is_null() || responses.is_null() || password.is_null() {
        return PAM_BUF_ERR;
    }
    // SAFETY: PAM passes `count` messages and frees the responses, allocated with calloc,
    // and each answer, allocated with strdup; `password` is the CString `authenticate` gave.
    unsafe {
        let answers = libc::calloc(n, std::mem::size_of::<PamResponse>()).cast::<PamResponse>();
        if answers.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..n {
            // Linux-PAM passes an array of pointers to messages.
            let message = *messages.add(i);
            if message.is_null() {
                continue;
            }
            let style = (*message).msg_style;
            if style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON {
                let answer = libc::strdup(password.cast::<c_char>());
                if answer.is_null() {
                    for j in 0..i {
                        libc::free((*answers.add(j)).resp.cast());
                    }
                    libc::free(answers.cast());
                    return PAM_BUF_ERR;
                }
                (*answers.add(i)).resp = answer;
            }
        }
        *responses = answers;
    }
    PAM_SUCCESS
}

/// Checks `password` for `account` with PAM service `service`: authentication, then the
/// account's own state (expired, locked, password to change). Blocking.
pub fn authenticate(service: &str, account: &str, password: &str) -> Result<(), PamError> {
    // PAM modules (and the test suite's pam_wrapper) are not all safe to run on several
    // threads at once; a simulated fleet checks many devices' runs in one process.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pam = pam()?;
    let invalid = |what: &str| PamError::Unavailable(format!("{what} contains a NUL byte"));
    let service = CString::new(service).map_err(|_| invalid("the PAM service name"))?;
    let user = CString::new(account).map_err(|_| invalid("the account name"))?;
    let secret = CString::new(password).map_err(|_| PamError::PasswordNotValid)?;
    let conv = PamConv {
        conv: converse,
        appdata_ptr: secret.as_ptr().cast_mut().cast(),
    };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: every pointer given lives until pam_end below; `handle` is PAM's own.
    unsafe {
        let status = (pam.start)(service.as_ptr(), user.as_ptr(), &conv, &mut handle);
        if status != PAM_SUCCESS || handle.is_null() {
            return Err(PamError::Unavailable(format!(
                "PAM did not start (status {status})"
            )));
        }
        let mut status = (pam.authenticate)(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        if status == PAM_SUCCESS {
            status = (pam.acct_mgmt)(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        }
        let result = match status {
            PAM_SUCCESS => Ok(()),
            PAM_USER_UNKNOWN => Err(PamError::UnknownAccount(account.to_string())),
            PAM_AUTH_ERR | PAM_PERM_DENIED | PAM_MAXTRIES | PAM_NEW_AUTHTOK_REQD
            | PAM_ACCT_EXPIRED | PAM_AUTHTOK_EXPIRED => Err(PamError::PasswordNotValid),
            other => {
                let text = (pam.strerror)(handle, other);
                let text = if text.is_null() {
                    format!("PAM error {other}")
                } else {
                    CStr::from_ptr(text).to_string_lossy().into_owned()
                };
                Err(PamError::Unavailable(text))
            }
        };
        (pam.end)(handle, status);
        result
    }
}

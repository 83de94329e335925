fn main() {
    // The sandbox helper re-executes this binary; it must not start the CLI.
    if std::env::args_os().nth(1).as_deref() == Some(strata::sandbox::HELPER_ARG.as_ref()) {
        strata::sandbox::helper_main();
    }
    // A detached container's supervisor (`strata run -d`) is this binary too.
    if std::env::args_os().nth(1).as_deref() == Some(strata::container::SUPERVISE_ARG.as_ref()) {
        strata::container::supervise_main();
    }
    // Not root: go on in a user namespace mapped from /etc/subuid (the
    // parent of the fork waits and exits with the child's status); `exec`
    // joins its container's instead.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if !strata::cli::stays_outside_userns(&args) {
        strata::userns::enter();
    }
    std::process::exit(strata::cli::main());
}

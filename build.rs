//! Build script: generates Rust bindings for the Kamailio ABI that the module
//! touches, compiles the C shim for macro-only APIs, and pins the module's
//! `module_version` / `module_flags` to the installed `kamailio` binary.
//!
//! Struct layouts in Kamailio depend on the exact `-D` set the server was
//! compiled with, which is more than `kamailio -v` shows. The set is taken
//! from Kamailio's own `make cfg` output (`src/config.mak`), never copied by
//! hand, and cross-checked against the installed binary: any difference stops
//! the build with a message saying which value differs.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KAMAILIO_SRC");
    println!("cargo:rerun-if-env-changed=KAMAILIO_BIN");
    println!("cargo:rerun-if-changed=kamailio-headers/wrapper.h");
    println!("cargo:rerun-if-changed=src/ffi/shim.c");

    let tree = kamailio_tree();
    let core_src = tree.join("src");
    ensure_config_mak(&core_src);
    println!(
        "cargo:rerun-if-changed={}",
        core_src.join("config.mak").display()
    );

    let mut defs = module_defines(&core_src.join("config.mak"));
    // Set by Kamailio's module Makefiles for every module, and by tm's own
    // Makefile for its headers (it only declares a variable there).
    defs.push("-DMOD_NAME=\"topos_rs\"".to_string());
    defs.push("-DWITH_EVENT_LOCAL_REQUEST".to_string());

    let includes = vec![
        format!("-I{}", core_src.display()),
        format!("-I{}", core_src.join("core").display()),
    ];

    let (bin_version, bin_flags) = installed_version();
    let (hdr_version, hdr_flags) = header_version(&core_src, &defs);
    // Kamailio's loader compares module_version with SER_FULL_VERSION
    // ("kamailio 6.0.1 (x86_64/linux)"). The version line of `kamailio -v`
    // is that, followed by a build id for builds from a tarball or git.
    let same_version = bin_version
        .strip_prefix(hdr_version.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '));
    if !same_version {
        panic!(
            "Kamailio version mismatch: the installed binary says version {bin_version:?}, \
             the headers in {} say module_version {hdr_version:?}. Point KAMAILIO_SRC at \
             the source of the installed version (or run `make headers`).",
            tree.display()
        );
    }
    if bin_flags != hdr_flags {
        let split = |s: &str| s.split(", ").map(str::to_string).collect::<Vec<_>>();
        let (bin, hdr) = (split(&bin_flags), split(&hdr_flags));
        let only_bin: Vec<_> = bin.iter().filter(|f| !hdr.contains(f)).collect();
        let only_hdr: Vec<_> = hdr.iter().filter(|f| !bin.contains(f)).collect();
        panic!(
            "Kamailio compile flags mismatch: the installed binary has {only_bin:?} that the \
             headers preprocessed with config.mak's -D set lack, and the headers have \
             {only_hdr:?} that the binary lacks (binary module_flags: {bin_flags:?}). The -D \
             set derived from `make cfg` does not match the build of the installed kamailio."
        );
    }
    println!("cargo:rustc-env=TOPOS_MODULE_VERSION={hdr_version}");
    println!("cargo:rustc-env=TOPOS_MODULE_FLAGS={bin_flags}");
    version_cfgs(&defs, &includes);

    generate_bindings(&defs, &includes);
    compile_shim(&defs, &includes);
}

/// The Kamailio source tree: `$KAMAILIO_SRC`, else the Debian source package
/// that `make headers` fetched into `kamailio-headers/src`.
fn kamailio_tree() -> PathBuf {
    let tree = match env::var_os("KAMAILIO_SRC") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("kamailio-headers/src"),
    };
    if !tree.join("src/core/sr_module.h").exists() {
        panic!(
            "no Kamailio source tree at {} (expected src/core/sr_module.h). Run `make headers` \
             to fetch the source of the installed version, or set KAMAILIO_SRC.",
            tree.display()
        );
    }
    tree
}

/// Runs Kamailio's own `make cfg` with Debian's options if the tree has not
/// been configured yet (debian/rules, target `configure-stamp`).
fn ensure_config_mak(core_src: &Path) {
    if core_src.join("config.mak").exists() {
        return;
    }
    let flag = |what: &str| -> String {
        Command::new("dpkg-buildflags")
            .args(["--get", what])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let extra = format!("{} {} -DVERSION_NODATE", flag("CPPFLAGS"), flag("CFLAGS"));
    let top = core_src.parent().expect("source tree has a parent");
    let status = Command::new("make")
        .current_dir(top)
        .args([
            "cfg",
            "quiet=silent",
            "prefix=/usr",
            "cfg_target=/etc/kamailio/",
            "FLAVOUR=kamailio",
            "group_include=kstandard",
        ])
        .arg(format!("CC_EXTRA_OPTS={extra}"))
        .status()
        .expect("running `make cfg` in the Kamailio source tree");
    if !status.success() || !core_src.join("config.mak").exists() {
        panic!("`make cfg` failed in {}", top.display());
    }
}

/// Every `-D` of C_DEFS, CC_EXTRA_OPTS and CC_PMUTEX_OPTS in config.mak.
fn module_defines(config_mak: &Path) -> Vec<String> {
    let text = fs::read_to_string(config_mak).expect("reading config.mak");
    let mut defs = Vec::new();
    for var in ["C_DEFS", "CC_EXTRA_OPTS", "CC_PMUTEX_OPTS"] {
        let prefix = format!("{var}=");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("config.mak has no {var}= line"));
        for word in shell_words(&line[prefix.len()..]) {
            if word.starts_with("-D") && !defs.contains(&word) {
                defs.push(word);
            }
        }
    }
    defs
}

/// Splits a make/shell value into words, honouring '...' and "..." quoting.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `module_version` and `module_flags` as the installed binary checks them.
fn installed_version() -> (String, String) {
    let bin = env::var("KAMAILIO_BIN").unwrap_or_else(|_| "kamailio".to_string());
    let out = Command::new(&bin).arg("-v").output().unwrap_or_else(|e| {
        panic!("cannot run `{bin} -v` ({e}); install kamailio (`make deps`) or set KAMAILIO_BIN")
    });
    let text = String::from_utf8_lossy(&out.stdout);
    // "version: kamailio 5.6.3 (x86_64/linux) " and "flags: USE_TCP, ..."
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("`{bin} -v` printed no {name:?} line"))
            .trim()
            .to_string()
    };
    (field("version:"), field("flags:"))
}

/// SER_FULL_VERSION and SER_COMPILE_FLAGS from the headers, preprocessed with
/// the derived -D set.
fn header_version(core_src: &Path, defs: &[String]) -> (String, String) {
    let include = format!("-I{}", core_src.display());
    let text = preprocess(
        "ver_probe.c",
        "#include \"core/ver_defs.h\"\n\
         TOPOS_FULL_VERSION SER_FULL_VERSION\n\
         TOPOS_COMPILE_FLAGS SER_COMPILE_FLAGS\n",
        defs,
        std::slice::from_ref(&include),
        "core/ver_defs.h",
    );
    let literal = |tag: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(tag))
            .unwrap_or_else(|| panic!("preprocessed ver_defs.h lacks {tag}"));
        concat_string_literals(&line[line.find(tag).unwrap() + tag.len()..])
    };
    (
        literal("TOPOS_FULL_VERSION"),
        literal("TOPOS_COMPILE_FLAGS"),
    )
}

/// Version-dependent behaviour is chosen by cfgs derived from the headers of
/// the tree being built against (never from a version number typed here):
///
/// - `kamailio_via_noreceived`: the core has `FL_VIA_NORECEIVED` and decides
///   on `;rport=` with `rport_test()` (Kamailio 6.0), instead of the 5.6 rule
///   (FL_FORCE_RPORT or an rport in the Via).
///
/// `KAMAILIO_VERSIONVAL` (the tree's VERSIONVAL, e.g. 6000001) is passed on
/// for messages.
fn version_cfgs(defs: &[String], includes: &[String]) {
    println!("cargo:rustc-check-cfg=cfg(kamailio_via_noreceived)");
    let text = preprocess(
        "cfg_probe.c",
        "#include \"core/parser/msg_parser.h\"\n\
         TOPOS_VERSIONVAL VERSIONVAL\n\
         #ifdef FL_VIA_NORECEIVED\n\
         TOPOS_HAS_FL_VIA_NORECEIVED\n\
         #endif\n",
        defs,
        includes,
        "core/parser/msg_parser.h",
    );
    let versionval = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("TOPOS_VERSIONVAL"))
        .map(str::trim)
        .unwrap_or_default();
    println!("cargo:rustc-env=KAMAILIO_VERSIONVAL={versionval}");
    if text
        .lines()
        .any(|l| l.trim() == "TOPOS_HAS_FL_VIA_NORECEIVED")
    {
        println!("cargo:rustc-cfg=kamailio_via_noreceived");
    }
}

/// Integer macros get the C type their users have instead of bindgen's
/// guess from the value:
/// - the core's message flags (`FL_*`): the type of `sip_msg.msg_flags` as
///   the headers declare it (`topos_msg_flags_t` in wrapper.h: 32 bits in
///   5.6, 64 in 6.0);
/// - the log levels (`L_*`, some negative): `int`, as the logging calls take.
#[derive(Debug)]
struct MacroIntTypes;

impl bindgen::callbacks::ParseCallbacks for MacroIntTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        if name.starts_with("FL_") {
            Some(bindgen::callbacks::IntKind::Custom {
                name: "topos_msg_flags_t",
                is_signed: false,
            })
        } else if LOG_LEVELS.contains(&name) {
            Some(bindgen::callbacks::IntKind::Int)
        } else {
            None
        }
    }
}

/// Kamailio's log levels the logger maps `log` levels to (core/dprint.h).
const LOG_LEVELS: [&str; 4] = ["L_ERR", "L_WARN", "L_INFO", "L_DBG"];

/// Concatenates adjacent C string literals ("a" "b" -> ab); Kamailio's
/// version strings contain no escapes.
fn concat_string_literals(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in s.chars() {
        match (inside, c) {
            (false, '"') => inside = true,
            (true, '"') => inside = false,
            (true, c) => out.push(c),
            _ => {}
        }
    }
    out
}

fn generate_bindings(defs: &[String], includes: &[String]) {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let mut builder = bindgen::Builder::default();
    for level in LOG_LEVELS {
        builder = builder.allowlist_var(level);
    }
    let bindings = builder
        .header("kamailio-headers/wrapper.h")
        .clang_args(defs)
        .clang_args(includes)
        .blocklist_item("IPPORT_RESERVED")
        .allowlist_type("sip_msg")
        .allowlist_type("hdr_field")
        .allowlist_type("via_body")
        .allowlist_type("via_param")
        .allowlist_type("lump")
        .allowlist_type("module_exports")
        .allowlist_type("cmd_export_t")
        .allowlist_type("param_export_t")
        .allowlist_type("modparam_t")
        .allowlist_type("cell")
        .allowlist_type("tm_binds")
        .allowlist_type("tmcb_params")
        .allowlist_type("tm_callback")
        .allowlist_type("tmcb_head_list")
        .allowlist_type("receive_info")
        .allowlist_type("ip_addr")
        .allowlist_type("sr_kemi_t")
        .allowlist_type("rpc_t")
        .allowlist_type("rpc_export_t")
        .allowlist_function("sr_kemi_modules_add")
        .allowlist_var("SR_KEMIP_.*")
        .allowlist_function("parse_headers")
        .allowlist_function("del_lump")
        .allowlist_function("anchor_lump")
        .allowlist_function("insert_new_lump_after")
        .allowlist_type("sip_protos")
        .allowlist_type("lump_subst")
        .allowlist_function("received_test")
        .allowlist_function("received_builder")
        .allowlist_function("rport_builder")
        .allowlist_function("register_script_cb")
        .allowlist_function("ip_addr2a")
        .allowlist_function("register_timer")
        .allowlist_function("check_self")
        .allowlist_function("rewrite_uri")
        .allowlist_function("set_dst_uri")
        .allowlist_function("reset_dst_uri")
        .allowlist_var("TMCB_.*")
        .allowlist_var("PROC_.*")
        .allowlist_var("PARAM_INT")
        .allowlist_var("topos_shim_pvs")
        .allowlist_var("server_id")
        .allowlist_type("pv_export_t")
        .allowlist_function("topos_shim_.*")
        .allowlist_var("global_req_flags")
        .allowlist_var("FL_FORCE_RPORT")
        .allowlist_type("topos_msg_flags_t")
        .allowlist_function("rport_test")
        .parse_callbacks(Box::new(MacroIntTypes))
        .allowlist_var("SIP_REQUEST")
        .allowlist_var("SIP_REPLY")
        .allowlist_var("REQUEST_ROUTE")
        .allowlist_var("LOCAL_ROUTE")
        .allowlist_var("FAILURE_ROUTE")
        .allowlist_var("BRANCH_ROUTE")
        .allowlist_var("TM_ONREPLY_ROUTE")
        .allowlist_var("CORE_ONREPLY_ROUTE")
        .allowlist_var("PARAM_STRING")
        .allowlist_var("ANY_ROUTE")
        .allowlist_type("topos_param_flags")
        .allowlist_var("POST_SCRIPT_CB")
        .allowlist_type("hdr_types_t")
        .allowlist_type("_hdr_types_t")
        .allowlist_type("script_cb_flag")
        .allowlist_type("request_method")
        .allowlist_function("counter_register")
        .allowlist_type("counter_handle_t")
        .allowlist_type("counter_val_t")
        .allowlist_var("CNT_F_NO_RESET")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen on kamailio-headers/wrapper.h");
    bindings
        .write_to_file(out_dir.join("kamailio_bindings.rs"))
        .expect("writing bindings");
}

fn compile_shim(defs: &[String], includes: &[String]) {
    let mut build = cc::Build::new();
    build.file("src/ffi/shim.c").include("kamailio-headers");
    for d in defs.iter().chain(includes) {
        build.flag(d);
    }
    build.flag("-fPIC").warnings(false).compile("topos_shim");
}

/// The C preprocessor's output for a probe file (written to OUT_DIR as
/// `name`), with Kamailio's -D set and include paths.
fn preprocess(
    name: &str,
    source: &str,
    defs: &[String],
    includes: &[String],
    what: &str,
) -> String {
    let probe = PathBuf::from(env::var("OUT_DIR").unwrap()).join(name);
    fs::write(&probe, source).unwrap();
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .arg("-E")
        .arg("-P")
        .args(defs)
        .args(includes)
        .arg(&probe)
        .output()
        .expect("running the C preprocessor");
    if !out.status.success() {
        panic!(
            "preprocessing {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

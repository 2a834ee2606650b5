/**
 * The host variables the runtime itself may need. Everything else is left out of Apptainer's own
 * environment: `--cleanenv` still lets TERM and the proxy variables (http_proxy, HTTPS_PROXY,
 * no_proxy, ...) through into the container (Apptainer 1.4.5), and APPTAINER_* / SINGULARITY_*
 * settings (APPTAINER_BIND, APPTAINERENV_*) would change what a spec means.
 */
const RUNTIME_VARIABLES = ["PATH", "HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"];

/** The environment Apptainer runs in: the allow-listed host variables, then `extra`. */
export function runtimeProcessEnv(
  host: NodeJS.ProcessEnv,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of RUNTIME_VARIABLES) {
    const value = host[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return { ...env, ...extra };
}

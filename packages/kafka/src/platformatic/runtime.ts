/** Whether @platformatic/kafka 2 runs on this Node (its `engines`: >= 22.22). */
export function platformaticRunsOn(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 22);
}

/** Connection URL with any password replaced by `***`, for messages and logs. Never log a raw URL. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

/** `host:port` of a URL (the port when it names one), for health reports: no scheme, user, password or path. */
export function endpointOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
  } catch {
    return 'unparsable URL';
  }
}

import { writeFileSync } from 'node:fs';
import { posix } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execForm, flag, healthcheck, last, readDockerfile, readYaml, readYamlDocuments, upstreamConfig } from '../docker/files.js';
import { runProxy } from '../helpers/proxy-process.js';
import { makeTempDir } from '../helpers/temp.js';

/**
 * docker/k8s/: no cluster is reachable here, so the manifests are parsed and checked
 * against each other, against docker/upstream.yaml and against the images the Dockerfile
 * builds (socket path, volume mounts, ports, probes, users, the stop sequence).
 */

interface Probe {
  exec?: { command: string[] };
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  periodSeconds?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  lifecycle: { preStop: { exec: { command: string[] } } };
  readinessProbe: Probe;
  livenessProbe: Probe;
  resources: { requests: { cpu: string; memory: string }; limits?: { memory: string } };
}
interface Deployment {
  kind: 'Deployment';
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        securityContext: { runAsNonRoot: boolean; runAsUser: number; runAsGroup: number; fsGroup: number };
        volumes: { name: string; emptyDir?: object; configMap?: { name: string } }[];
        containers: Container[];
      };
    };
  };
}
interface Service {
  kind: 'Service';
  spec: { selector: Record<string, string>; ports: { port: number; targetPort: string | number }[] };
}
interface ConfigMap {
  kind: 'ConfigMap';
  metadata: { name: string };
  data: Record<string, string>;
}
interface ComposeFile {
  services: Record<string, { image: string }>;
}


const [deployment] = readYamlDocuments<Deployment>('docker/k8s/deployment.yaml');
const [service] = readYamlDocuments<Service>('docker/k8s/service.yaml');
const [configMap] = readYamlDocuments<ConfigMap>('docker/k8s/configmap.yaml');
const pod = deployment!.spec.template.spec;
const container = (name: string): Container => {
  const found = pod.containers.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`the pod has no container "${name}"`);
  return found;
};
const app = container('app');
const sockproxy = container('sockproxy');
const dockerfile = readDockerfile();
const upstream = upstreamConfig();
const socketDir = posix.dirname(upstream.socketPath);
const appCommand = execForm(last(dockerfile.inherited('app'), 'CMD')!);
const proxyCommand = execForm(last(dockerfile.inherited('proxy'), 'CMD')!);
const configPath = flag(proxyCommand, '--config')!;

/** The seconds of a `sleep N` preStop hook. */
function preStopSleep(c: Container): number {
  const command = c.lifecycle.preStop.exec.command;
  expect(command, `${c.name} preStop`).toHaveLength(2);
  expect(command[0]).toBe('sleep');
  return Number(command[1]);
}

describe('docker/k8s/: the app with sockproxy as a sidecar', () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.remove());

  it('one Deployment, one Service and one ConfigMap; the Service selects the pods', () => {
    expect([deployment!.kind, service!.kind, configMap!.kind]).toEqual(['Deployment', 'Service', 'ConfigMap']);
    expect(deployment!.spec.selector.matchLabels).toEqual(deployment!.spec.template.metadata.labels);
    expect(service!.spec.selector).toEqual(deployment!.spec.selector.matchLabels);
    expect(deployment!.spec.replicas).toBeGreaterThan(1);
  });

  it("runs the images compose builds, with their own commands", () => {
    const compose = readYaml<ComposeFile>('docker/docker-compose.yml');
    expect(app.image).toBe(compose.services.app!.image);
    expect(sockproxy.image).toBe(compose.services.proxy!.image);
    for (const c of [app, sockproxy]) expect([c.command, c.args], c.name).toEqual([undefined, undefined]);
  });

  it('both containers mount one emptyDir where the socket is', () => {
    const mountsAt = (c: Container, path: string): string[] =>
      c.volumeMounts.filter((mount) => mount.mountPath === path).map((mount) => mount.name);
    const [volume] = mountsAt(app, socketDir);
    expect(volume).toBeDefined();
    expect(mountsAt(sockproxy, socketDir)).toEqual([volume]);
    expect(pod.volumes.find((v) => v.name === volume)).toEqual({ name: volume, emptyDir: {} });
    expect(flag(appCommand, '--bind')).toBe(`unix:${upstream.socketPath}`);
  });

  it("the ConfigMap is docker/upstream.yaml, mounted where the image's --config points, and passes sockproxy -t", async () => {
    const [volume] = sockproxy.volumeMounts
      .filter((mount) => mount.mountPath === posix.dirname(configPath))
      .map((mount) => mount.name);
    expect(pod.volumes.find((v) => v.name === volume)?.configMap).toEqual({ name: configMap!.metadata.name });
    expect(Object.keys(configMap!.data)).toEqual([posix.basename(configPath)]);
    const text = configMap!.data[posix.basename(configPath)]!;
    expect(text).toBe(upstream.text);
    const file = tmp.path('configmap.yaml');
    writeFileSync(file, text);
    const result = await runProxy(['-t', '--config', file]);
    expect(result.code).toBe(0);
  });

  it("the proxy's port is the configuration's listen port, named for the Service and the probes", () => {
    expect(sockproxy.ports).toEqual([{ name: 'http', containerPort: upstream.port }]);
    expect(service!.spec.ports.map((port) => port.targetPort)).toEqual(['http']);
    expect(sockproxy.readinessProbe.httpGet).toEqual({ path: '/', port: 'http' });
    // Alive while it accepts connections: a 502 (the app down) must not restart the proxy.
    expect(sockproxy.livenessProbe.tcpSocket).toEqual({ port: 'http' });
  });

  it("the app's probes are the image's HEALTHCHECK: a connect to the socket", () => {
    const check = healthcheck(last(dockerfile.inherited('app'), 'HEALTHCHECK')!).command;
    expect(app.readinessProbe.exec?.command).toEqual(check);
    expect(app.livenessProbe.exec?.command).toEqual(check);
  });

  it("runs as the images' non-root uid, with the emptyDir's group set to it", () => {
    const [uid, gid] = last(dockerfile.inherited('proxy'), 'USER')!.split(':').map(Number);
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid, fsGroup: gid });
  });

  it("stops in order within the grace period: the proxy drains, then the app finishes, then SIGKILL", () => {
    const proxyDone = preStopSleep(sockproxy) + upstream.shutdownSeconds;
    expect(preStopSleep(sockproxy)).toBeGreaterThan(0); // time for the endpoints to drop the pod
    // The app gets SIGTERM only once the proxy has stopped: none of its requests loses the app.
    expect(preStopSleep(app)).toBeGreaterThanOrEqual(proxyDone);
    const appDone = preStopSleep(app) + Number(flag(appCommand, '--graceful-timeout'));
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Math.max(proxyDone, appDone));
  });

  it('every container requests CPU and memory and has a memory limit', () => {
    for (const c of pod.containers) {
      expect(c.resources.requests, c.name).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.resources.limits?.memory, c.name).toEqual(expect.any(String));
    }
  });
});

import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  buildPod,
  riskyTemplateSettings,
  validatePodTemplate,
  type PodTemplate,
} from '../../src/k8s/pod-template.ts';
import { podNameFor } from '../../src/k8s/pod-identity.ts';

t.test('pod names are valid DNS-1123 labels for any grant id', async (t) => {
  for (const id of ['a', 'UPPER', 'with/slash', 'x'.repeat(10_000), '\u0000']) {
    t.match(podNameFor(id), /^paygress-[0-9a-f]{20}$/);
  }
  t.not(podNameFor('a'), podNameFor('b'));
});

t.test(
  'label and annotation keys Kubernetes would refuse fail at start',
  async (t) => {
    for (const key of [
      'has space',
      '-leading',
      'a/b/c',
      'Upper.Case/name',
      `${'x'.repeat(64)}`,
      `${'a'.repeat(254)}/name`,
      'example.com/',
    ]) {
      t.throws(
        () => validatePodTemplate({ image: 'a', labels: { [key]: 'v' } }),
        /key .* is not a valid Kubernetes key/,
        `label ${key.slice(0, 20)}`,
      );
      t.throws(
        () => validatePodTemplate({ image: 'a', annotations: { [key]: 'v' } }),
        /key .* is not a valid Kubernetes key/,
        `annotation ${key.slice(0, 20)}`,
      );
    }
    t.doesNotThrow(() =>
      validatePodTemplate({
        image: 'a',
        labels: { app: 'x', 'team.example.com/owner': 'y', 'a_b.c-d': 'z' },
        annotations: { 'prometheus.io/scrape': 'true' },
      }),
    );
  },
);

t.test('settings that give a pod power over its node are named', async (t) => {
  t.same(riskyTemplateSettings({ image: 'a' }), []);
  t.same(
    riskyTemplateSettings({
      image: 'a',
      securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false },
    }),
    [],
  );
  t.same(
    riskyTemplateSettings({
      image: 'a',
      securityContext: {
        privileged: true,
        allowPrivilegeEscalation: true,
        capabilities: { add: ['SYS_ADMIN', 'NET_RAW'] },
        runAsUser: 0,
      },
    }),
    [
      'securityContext.privileged: a privileged container controls its node',
      'securityContext.allowPrivilegeEscalation: processes may gain more privileges than they started with',
      'securityContext.capabilities.add: SYS_ADMIN, NET_RAW',
      'securityContext: the container runs as root',
    ],
  );
});

t.test(
  'a template of the wrong shape is refused with the field it is in',
  async (t) => {
    const refused: [string, Record<string, unknown>, RegExp][] = [
      ['env as a mapping', { env: {} }, /`template.env` must be a list/],
      ['ports as a string', { ports: '80' }, /`template.ports` must be a list/],
      [
        'an env value that is a number',
        { env: [{ name: 'A', value: 5 }] },
        /`template.env\[0\].value` must be a string/,
      ],
      [
        'an env field Kubernetes lacks',
        { env: [{ name: 'A', vaule: 'x' }] },
        /`template.env\[0\]` has no field "vaule" in Kubernetes: expected name, value, valueFrom/,
      ],
      [
        'a security context that is a number',
        { securityContext: 5 },
        /`template.securityContext` must be a mapping/,
      ],
      [
        'privileged as a string',
        { securityContext: { privileged: 'true' } },
        /`template.securityContext.privileged` must be true or false/,
      ],
      [
        'added capabilities not as a list',
        { securityContext: { capabilities: { add: 'SYS_ADMIN' } } },
        /`template.securityContext.capabilities.add` must be a list of strings/,
      ],
      [
        'an array-like mapping of capabilities',
        { securityContext: { capabilities: { add: { 0: 'X', length: 1 } } } },
        /capabilities.add` must be a list of strings/,
      ],
      [
        'resources that are a number',
        { resources: 5 },
        /`template.resources` must be a mapping/,
      ],
      [
        'limits as a list',
        { resources: { limits: [1] } },
        /`template.resources.limits` must be a mapping/,
      ],
      [
        'a limit that is no quantity',
        { resources: { limits: { memory: 'lots' } } },
        /`template.resources.limits.memory` must be a Kubernetes quantity/,
      ],
      ['labels as a list', { labels: ['a'] }, /`template.labels` must be/],
      [
        'annotations as a list',
        { annotations: ['a'] },
        /`template.annotations` must be/,
      ],
    ];
    for (const [what, fields, message] of refused) {
      t.throws(
        () => validatePodTemplate({ image: 'a', ...fields } as PodTemplate),
        message,
        what,
      );
    }
    t.doesNotThrow(
      () =>
        validatePodTemplate({
          image: 'a',
          // As YAML gives them: numbers and nulls where Kubernetes takes them.
          env: [
            { name: 'A', value: 'x' },
            {
              name: 'B',
              valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
            },
          ],
          ports: [{ containerPort: 8888, name: 'http', protocol: 'TCP' }],
          resources: {
            requests: { cpu: '250m', memory: '256Mi' },
            limits: { cpu: 1, memory: '1Gi', 'ephemeral-storage': '2G' },
          },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
            readOnlyRootFilesystem: null,
          },
        } as unknown as PodTemplate),
      'what Kubernetes takes passes',
    );
  },
);

t.test('the template cannot take over Paygress labels or expiry', async (t) => {
  t.throws(
    () =>
      validatePodTemplate({
        image: 'a',
        labels: { 'paygress.dev/grant': 'x' },
      }),
    /may not set/,
  );
  t.throws(
    () =>
      validatePodTemplate({
        image: 'a',
        labels: { 'app.kubernetes.io/managed-by': 'me' },
      }),
    /may not set/,
  );
  t.throws(
    () =>
      validatePodTemplate({
        image: 'a',
        annotations: { 'paygress.dev/expires-at': 'never' },
      }),
    /may not set/,
  );
  t.throws(() => validatePodTemplate({ image: 'a b' }), /template.image/);
  t.throws(
    () => validatePodTemplate({ image: 'a', maxLifetimeSeconds: 0 }),
    /maxLifetimeSeconds/,
  );
  t.throws(
    () =>
      validatePodTemplate({ image: 'a', ports: [{ containerPort: 70_000 }] }),
    /containerPort/,
  );
  t.throws(
    () => validatePodTemplate({ image: 'a', serviceAccountName: 'Bad_Name' }),
    /serviceAccountName/,
  );
});

t.test(
  'a validated template is a frozen copy the pod cannot alias',
  async (t) => {
    const source = { image: 'a', env: [{ name: 'K', value: 'v' }] };
    const template = validatePodTemplate(source);
    source.env[0]!.value = 'changed';

    const pod = buildPod(template, 'g', Date.UTC(2030, 0, 1));
    pod.spec!.containers[0]!.env![0]!.value = 'mutated';

    t.equal(template.env![0]!.value, 'v');
    t.ok(Object.isFrozen(template.env));
    t.equal(
      buildPod(template, 'g', 0).spec!.containers[0]!.env![0]!.value,
      'v',
    );
  },
);

t.test(
  'a named service account gets its token; by default none is mounted',
  async (t) => {
    const own = buildPod(
      validatePodTemplate({ image: 'a', serviceAccountName: 'runner' }),
      'g',
      0,
    );
    t.equal(own.spec!.serviceAccountName, 'runner');
    t.equal(own.spec!.automountServiceAccountToken, undefined);
    const plain = buildPod(validatePodTemplate({ image: 'a' }), 'g', 0);
    t.equal(plain.spec!.automountServiceAccountToken, false);
    t.equal(plain.spec!.activeDeadlineSeconds, undefined);
  },
);

t.test(
  'the RBAC manifest grants only the pod verbs Paygress uses',
  async (t) => {
    const docs = parseAllDocuments(
      readFileSync(
        new URL('../../deploy/kubernetes/rbac.yaml', import.meta.url),
        'utf8',
      ),
    ).map((d) => d.toJS());
    t.same(
      docs.map((d) => d.kind),
      ['ServiceAccount', 'Role', 'RoleBinding'],
    );
    const role = docs[1];
    t.same(role.rules, [
      {
        apiGroups: [''],
        resources: ['pods'],
        verbs: ['create', 'get', 'list', 'patch', 'delete'],
      },
    ]);
    t.same(docs[2].roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: role.metadata.name,
    });
    const namespaces = new Set(docs.map((d) => d.metadata.namespace));
    t.equal(namespaces.size, 1);
  },
);

var resp = jelastic.env.control.GetEnvs();
if (resp.result !== 0) return resp;
var envs = [], nodes = {};
for (var i = 0, envInfo, env; envInfo = resp.infos[i]; i++) {
  env = envInfo.env;
  if (env.status != 1) continue;
  for (var j = 0, node; node = envInfo.nodes[j]; j++) {
    nodes[env.envName] = nodes[env.envName] || [];
    if (node.nodeType.indexOf('postgres') > -1 || node.nodeType == 'pgpool2') {
      if (!nodes[env.envName].some(function (g) { return g.value == node.nodeGroup; }))
        nodes[env.envName].push({value: node.nodeGroup, caption: node.name + ' (' + node.nodeGroup + ')'});
    }
  }
  if (nodes[env.envName] && nodes[env.envName].length > 0)
    envs.push({value: env.envName, caption: env.displayName + ' (' + env.envName + ')'});
}
if (envs.length > 0) {
  jps.settings.fields[0].values = envs;
  jps.settings.fields[0].value = envs[0].value;
  jps.settings.fields[1].dependsOn.envName = nodes;
}
return {result: 0, settings: jps.settings};

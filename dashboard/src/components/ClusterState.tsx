import { summarizeState, type NodeMetrics, type StateField } from '../lib/live';
import { Badge } from './common';

/** A state over the cluster: "3 ok", or "1 degraded of 3" with the nodes named. */
export function ClusterState({ list, field, testId }: { list: NodeMetrics[]; field: StateField; testId: string }) {
  if (!list.length) return <span className="muted">—</span>;
  const sum = summarizeState(list, field);
  return (
    <span data-testid={testId}>
      <Badge state={sum.worst}>{sum.label}</Badge>
      {sum.notOk.map((n) => (
        <span key={n.state} className="small state-nodes">
          {' '}
          {n.state}: <strong>{n.nodes.join(', ')}</strong>
        </span>
      ))}
    </span>
  );
}

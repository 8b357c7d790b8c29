// Checks the package's XML documentation as a user sees it in the IDE: every public type and
// member has a <summary>; every parameter of a public method or constructor its <param>; every
// public method returning a value its <returns>. Usage: mono DocCheck.exe CubeWalk.Net.dll CubeWalk.Net.xml
using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Xml;

static class DocCheck
{
    static string TypeName(Type t)
    {
        if (t.IsByRef) return TypeName(t.GetElementType()) + "@";
        if (t.IsArray) return TypeName(t.GetElementType()) + "[]";
        if (t.IsGenericParameter) return (t.DeclaringMethod != null ? "``" : "`") + t.GenericParameterPosition;
        if (t.IsGenericType)
        {
            string name = t.GetGenericTypeDefinition().FullName;
            name = name.Substring(0, name.IndexOf('`')).Replace('+', '.');
            return name + "{" + string.Join(",", t.GetGenericArguments().Select(TypeName)) + "}";
        }
        return t.FullName.Replace('+', '.');
    }

    static string Params(ParameterInfo[] ps)
    {
        return ps.Length == 0 ? "" : "(" + string.Join(",", ps.Select(p => TypeName(p.ParameterType))) + ")";
    }

    static int Main(string[] args)
    {
        var asm = Assembly.LoadFrom(args[0]);
        var xml = new XmlDocument();
        xml.Load(args[1]);
        var docs = new Dictionary<string, XmlElement>();
        foreach (XmlElement m in xml.SelectNodes("//member")) docs[m.GetAttribute("name")] = m;
        var problems = new List<string>();
        Func<string, XmlElement> doc = id => { XmlElement e; return docs.TryGetValue(id, out e) ? e : null; };
        foreach (Type t in asm.GetExportedTypes())
        {
            string tid = "T:" + t.FullName.Replace('+', '.');
            if (doc(tid) == null || doc(tid)["summary"] == null) problems.Add(tid + ": no summary");
            const BindingFlags pub = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (MemberInfo m in t.GetMembers(pub))
            {
                string id = null;
                ParameterInfo[] ps = null;
                Type returns = null;
                var method = m as MethodBase;
                if (method != null)
                {
                    if (method.IsSpecialName && !(method is ConstructorInfo)) continue; // accessors, operators
                    if (method is ConstructorInfo && t.IsValueType && method.GetParameters().Length == 0) continue;
                    if (method.DeclaringType.IsSubclassOf(typeof(Delegate))) continue;
                    string name = method is ConstructorInfo ? "#ctor" : method.Name;
                    if (method.IsGenericMethod) name += "``" + method.GetGenericArguments().Length;
                    id = "M:" + t.FullName.Replace('+', '.') + "." + name + Params(method.GetParameters());
                    ps = method.GetParameters();
                    var mi = method as MethodInfo;
                    if (mi != null && mi.ReturnType != typeof(void)) returns = mi.ReturnType;
                }
                else if (m is PropertyInfo) id = "P:" + t.FullName.Replace('+', '.') + "." + m.Name;
                else if (m is FieldInfo) id = "F:" + t.FullName.Replace('+', '.') + "." + m.Name;
                else if (m is EventInfo) id = "E:" + t.FullName.Replace('+', '.') + "." + m.Name;
                else continue;
                if (t.IsEnum && m is FieldInfo && ((FieldInfo)m).IsSpecialName) continue;
                XmlElement d = doc(id);
                if (d == null || (d["summary"] == null && d["inheritdoc"] == null)) { problems.Add(id + ": no summary"); continue; }
                if (d["inheritdoc"] != null) continue;
                if (ps != null)
                    foreach (var p in ps)
                        if (!d.SelectNodes("param").Cast<XmlElement>().Any(e => e.GetAttribute("name") == p.Name)) problems.Add(id + ": no <param name=\"" + p.Name + "\">");
                if (returns != null && d["returns"] == null) problems.Add(id + ": no <returns>");
            }
        }
        foreach (string p in problems) Console.WriteLine(p);
        Console.WriteLine("docs: " + problems.Count + " problem(s)");
        return problems.Count == 0 ? 0 : 1;
    }
}
